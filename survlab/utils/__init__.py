"""Layer 1, utils: leaves (atomic files, job identity / lock / markers, DDP helpers, malloc, memory probes,
console); imports nothing else of survlab."""
