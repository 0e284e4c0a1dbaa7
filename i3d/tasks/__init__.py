"""What people do with I3D, by use: ``recognizer`` (the front door: classify a clip or video, extract its
features) over ``sources``; then ``batch`` (a whole dataset), ``live``, ``fvd`` and ``explain``; then
``training`` and ``segments``, which build on a batch run. Each imports only from the uses below it."""
