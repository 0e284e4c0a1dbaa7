"""A whole dataset through I3D: the run, its output folder (settings, records, summary, charts), one video's
work, the local and Ray executors, and the progress line."""
