# (filled in by the sip part of the binding)
