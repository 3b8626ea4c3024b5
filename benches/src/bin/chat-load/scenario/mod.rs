//! The scenarios, one per file; each one's parameters are a struct that is also its command
//! line, and `run` measures it into the report.

pub(crate) mod dm;
pub(crate) mod fanout;
pub(crate) mod idle;
pub(crate) mod login_attack;
pub(crate) mod login_storm;
pub(crate) mod soak;
