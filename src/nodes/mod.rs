//! Runnable node kinds, one module each; their pure cores are unit-tested apart from the actors that run them.

pub mod processors;
