# (filled in by the net part of the binding)
