"""What people read and look at: tables, JSON, and pictures of the network's input."""
