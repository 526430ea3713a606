pub mod agent;
pub mod inspect;
pub mod record;
