//! The Markov-chain model (being written).
