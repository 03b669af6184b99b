"""Data readers (REFLACX, EGD-CXR, images) and the embedded phantom data set."""
