"""Models: the distributed patch QNN, its patch grids and feature maps, and the classical MLP and CNN."""
