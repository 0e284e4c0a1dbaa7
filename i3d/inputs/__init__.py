"""Where clips come from: video files and frame folders, .npy arrays, DeepMind's sample."""
