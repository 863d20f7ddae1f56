//! TEMP STUB
use super::{Events, Read, Refused, RequestOpts, Translated};
use bytes::{Bytes, BytesMut};
pub fn chat_to_converse(_b: &[u8], _o: &RequestOpts) -> Result<Translated, Refused> {
    Err(Refused::new("x", "stub"))
}
pub fn answer_to_chat(_b: &[u8], _r: &mut Read) -> Bytes {
    Bytes::new()
}
pub struct ConverseToChat;
impl ConverseToChat {
    pub fn new(_i: bool) -> Self {
        ConverseToChat
    }
}
impl Events for ConverseToChat {
    fn event(&mut self, _d: &[u8], _r: &mut Read, _o: &mut BytesMut) {}
    fn end(&mut self, _r: &mut Read, _o: &mut BytesMut) {}
}
pub fn error_to_chat(_b: &[u8], _s: u16, _t: Option<&str>) -> Bytes {
    Bytes::new()
}
