# (filled in by the track part of the binding)
