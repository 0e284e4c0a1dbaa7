"""Fréchet Video Distance: embeddings, their statistics, and the distance."""
