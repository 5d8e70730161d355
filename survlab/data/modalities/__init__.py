"""Modality readers and stores: WSI features (CLAM / TRIDENT layouts, packed and resident stores), genomics
(+ gene filter), CT/PET imaging, text prompts."""
