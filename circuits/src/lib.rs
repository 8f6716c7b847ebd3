//! # circuits
//!
//! Poseidon2 over the BN254 scalar field and what Vellum builds from it: packing bytes into field
//! elements, hashing whole cells with a sponge, and the keyed compression of slot-tree nodes.
//! The native code here is the single definition; the R1CS gadgets (next issue) must match it
//! bit for bit.
