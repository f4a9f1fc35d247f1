//! The client fed hand-written server frames.
