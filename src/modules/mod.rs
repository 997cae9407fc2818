//! Stand-alone edge modules that ship in the same binary as the appliance (e.g. the simulated RTSP camera).

pub mod detector;
pub mod object_counter;
pub mod rtspsim;
