"""Evaluations of generated images: quality and diversity (FID / KID, FRD, MS-SSIM), control adherence,
downstream classification (CheXpert and MIMIC-CXR-LT protocols), attributions, and the study that runs them."""
