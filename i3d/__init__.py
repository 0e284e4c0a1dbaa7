"""I3D action recognition (Carreira & Zisserman 2017) in Keras 3."""
