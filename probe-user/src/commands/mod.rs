pub mod inspect;
pub mod record;
