//! The SSE events of a Messages answer (order and shapes in the parent module's
//! doc).

use super::{MessagesAnswer, SIGNATURE, THINKING_TEXT, TOOL_INPUT_PIECES};
use crate::mock_upstream::{sse_event, CHUNK_TEXT};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::VecDeque;

/// The SSE events of `plan`'s answer.
pub(super) fn frames(plan: &MessagesAnswer, id: &str, model: &Value, n: u64) -> VecDeque<Bytes> {
    let mut ev = Events::default();
    ev.push(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": plan.usage.json(false),
        }}),
    );
    if plan.thinking {
        let i = ev.start_block(json!({"type": "thinking", "thinking": "", "signature": ""}));
        let delta = json!({"type": "thinking_delta", "thinking": THINKING_TEXT});
        for _ in 0..plan.thinking_chunks {
            ev.delta(i, &delta);
        }
        ev.delta(
            i,
            &json!({"type": "signature_delta", "signature": SIGNATURE}),
        );
        ev.stop_block(i);
    }
    let i = ev.start_block(json!({"type": "text", "text": ""}));
    let delta = json!({"type": "text_delta", "text": CHUNK_TEXT});
    for _ in 0..plan.text_chunks {
        ev.delta(i, &delta);
    }
    ev.stop_block(i);
    if let Some(name) = &plan.tool {
        let i = ev.start_block(json!({"type": "tool_use", "id": format!("toolu_mock{n}"),
            "name": name, "input": {}}));
        for piece in TOOL_INPUT_PIECES {
            ev.delta(
                i,
                &json!({"type": "input_json_delta", "partial_json": piece}),
            );
        }
        ev.stop_block(i);
    }
    ev.push(
        "message_delta",
        json!({"type": "message_delta",
            "delta": {"stop_reason": plan.stop_reason, "stop_sequence": null},
            "usage": plan.usage.delta_json()}),
    );
    ev.push("message_stop", json!({"type": "message_stop"}));
    ev.frames
}

/// The `error` event of a stream that fails after its 200.
pub(super) fn error_event(n: u64) -> Bytes {
    let data = json!({
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": format!("req_mock{n}"),
    });
    sse_event("error", &data.to_string())
}

/// The events of a stream being built: block indexes, and one `ping` after the
/// first `content_block_start`.
#[derive(Default)]
struct Events {
    frames: VecDeque<Bytes>,
    blocks: usize,
}

impl Events {
    fn push(&mut self, name: &str, data: Value) {
        self.frames.push_back(sse_event(name, &data.to_string()));
    }

    fn start_block(&mut self, block: Value) -> usize {
        let index = self.blocks;
        self.blocks += 1;
        self.push(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        if index == 0 {
            self.push("ping", json!({"type": "ping"}));
        }
        index
    }

    fn delta(&mut self, index: usize, delta: &Value) {
        self.push(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        );
    }

    fn stop_block(&mut self, index: usize) {
        self.push(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        );
    }
}
