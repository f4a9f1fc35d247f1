//! Property tests over byte splits and frame losses.
