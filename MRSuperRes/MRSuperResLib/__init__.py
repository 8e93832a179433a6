"""MRI super-resolution and denoising: degradation physics, MONAI network, inference, evaluation."""
