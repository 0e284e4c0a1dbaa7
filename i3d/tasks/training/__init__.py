"""A head for the user's own classes: the splits, the features it is fitted on, the linear fit, and the
fine-tuning of Mixed_5c."""
