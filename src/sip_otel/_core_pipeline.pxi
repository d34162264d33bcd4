# (filled in by the pipeline part of the binding)
