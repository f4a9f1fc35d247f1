//! Who may open a session: failed logins counted per address (or serial
//! port), and the session slots each device may hold at once. The service
//! owns both; the handshake asks them before it lets a device in.

pub mod device_slots;
pub mod failed_logins;
