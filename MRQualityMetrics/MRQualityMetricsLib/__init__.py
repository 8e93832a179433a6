"""Image-quality metrics for MRI: line-profile sharpness and region SNR/CNR (no torch, no Slicer needed)."""
