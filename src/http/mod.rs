//! HTTP/1.1 on the wire: request heads in, response heads out, statuses and dates.
//!
//! Nothing here touches a socket or a file; `conn` feeds bytes in and takes bytes out.

pub mod body;
pub mod conditional;
pub mod date;
pub mod encoding;
pub mod multipart;
pub mod request;
pub mod response;
pub mod status;
pub mod syntax;

pub use status::Status;
