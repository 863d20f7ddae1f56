//! TEMP STUB
use super::{Events, Read, Refused, RequestOpts, Translated};
use bytes::{Bytes, BytesMut};
pub fn chat_to_gemini(_b: &[u8], _o: &RequestOpts) -> Result<Translated, Refused> {
    Err(Refused::new("x", "stub"))
}
pub fn embeddings_to_gemini(_b: &[u8], _o: &RequestOpts) -> Result<(Translated, bool), Refused> {
    Err(Refused::new("x", "stub"))
}
pub fn answer_to_chat(_b: &[u8], _r: &mut Read) -> Bytes {
    Bytes::new()
}
pub fn embeddings_to_openai(_b: &[u8], _r: &mut Read) -> Bytes {
    Bytes::new()
}
pub struct GeminiToChat;
impl GeminiToChat {
    pub fn new(_i: bool) -> Self {
        GeminiToChat
    }
}
impl Events for GeminiToChat {
    fn event(&mut self, _d: &[u8], _r: &mut Read, _o: &mut BytesMut) {}
    fn end(&mut self, _r: &mut Read, _o: &mut BytesMut) {}
}
pub fn error_to_chat(_b: &[u8], _s: u16) -> Bytes {
    Bytes::new()
}
pub fn is_google_error(_b: &[u8]) -> bool {
    false
}
