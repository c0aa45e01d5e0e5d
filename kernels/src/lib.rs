//! cinder-kernels: dequantize-and-dot kernels for every ISA, chosen once at startup.
