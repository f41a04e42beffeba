//! The request plane's frames and their byte layout.
//!
//! Every frame travels inside a u32 big-endian length prefix (tokio-util's
//! `LengthDelimitedCodec`) and starts with a one-byte tag and the u64 stream id:
//!
//! | tag | frame          | after `tag, stream_id`                                   | sent by |
//! |-----|----------------|----------------------------------------------------------|---------|
//! | 1   | `Request`      | `window: u32`, `endpoint_len: u16`, endpoint, payload    | client  |
//! | 2   | `Data`         | payload                                                  | server  |
//! | 3   | `End`          | —                                                        | server  |
//! | 4   | `Error`        | `WireError` as JSON                                      | server  |
//! | 5   | `Cancel`       | —                                                        | client  |
//! | 6   | `WindowUpdate` | `credit: u32`                                            | client  |
//!
//! All integers are big-endian. Payloads are opaque bytes, so a token chunk costs nine bytes of
//! framing and no re-encoding.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use rotor_protocol::WireError;
use tokio_util::codec::LengthDelimitedCodec;

use crate::error::{Error, Result};

const TAG_REQUEST: u8 = 1;
const TAG_DATA: u8 = 2;
const TAG_END: u8 = 3;
const TAG_ERROR: u8 = 4;
const TAG_CANCEL: u8 = 5;
const TAG_WINDOW_UPDATE: u8 = 6;

/// Bytes of `tag + stream_id` that precede every frame body.
pub const HEADER_BYTES: usize = 1 + 8;

/// Bytes a `Request` frame adds in front of its endpoint name and payload.
pub const REQUEST_HEADER_BYTES: usize = HEADER_BYTES + 4 + 2;

/// Identifies one request/response exchange within a connection; chosen by the client.
pub type StreamId = u64;

/// One message on a request-plane connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens stream `stream_id`: run `endpoint` on `payload`. `window` is how many `Data`
    /// frames the server may send before it must wait for a `WindowUpdate`.
    Request {
        stream_id: StreamId,
        window: u32,
        endpoint: String,
        payload: Bytes,
    },
    /// One response item.
    Data { stream_id: StreamId, payload: Bytes },
    /// The response finished normally.
    End { stream_id: StreamId },
    /// The response finished with an error.
    Error {
        stream_id: StreamId,
        error: WireError,
    },
    /// The client no longer wants the response; the server stops the work.
    Cancel { stream_id: StreamId },
    /// The client consumed `credit` more `Data` frames; the server may send that many more.
    WindowUpdate { stream_id: StreamId, credit: u32 },
}

impl Frame {
    /// The stream this frame belongs to.
    pub fn stream_id(&self) -> StreamId {
        match self {
            Frame::Request { stream_id, .. }
            | Frame::Data { stream_id, .. }
            | Frame::End { stream_id }
            | Frame::Error { stream_id, .. }
            | Frame::Cancel { stream_id }
            | Frame::WindowUpdate { stream_id, .. } => *stream_id,
        }
    }

    /// Size of the encoded frame, without the length prefix.
    pub fn encoded_len(&self) -> usize {
        HEADER_BYTES
            + match self {
                Frame::Request {
                    endpoint, payload, ..
                } => 4 + 2 + endpoint.len() + payload.len(),
                Frame::Data { payload, .. } => payload.len(),
                Frame::End { .. } | Frame::Cancel { .. } => 0,
                Frame::Error { error, .. } => error_json(error).len(),
                Frame::WindowUpdate { .. } => 4,
            }
    }

    /// Encodes the frame body (the codec adds the length prefix).
    pub fn encode(&self) -> Result<Bytes> {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        match self {
            Frame::Request {
                stream_id,
                window,
                endpoint,
                payload,
            } => {
                let endpoint_len =
                    u16::try_from(endpoint.len()).map_err(|_| Error::FrameTooLarge {
                        size_bytes: endpoint.len(),
                        max_bytes: u16::MAX as usize,
                    })?;
                put_header(&mut buf, TAG_REQUEST, *stream_id);
                buf.put_u32(*window);
                buf.put_u16(endpoint_len);
                buf.put_slice(endpoint.as_bytes());
                buf.put_slice(payload);
            }
            Frame::Data { stream_id, payload } => {
                put_header(&mut buf, TAG_DATA, *stream_id);
                buf.put_slice(payload);
            }
            Frame::End { stream_id } => put_header(&mut buf, TAG_END, *stream_id),
            Frame::Error { stream_id, error } => {
                put_header(&mut buf, TAG_ERROR, *stream_id);
                buf.put_slice(&error_json(error));
            }
            Frame::Cancel { stream_id } => put_header(&mut buf, TAG_CANCEL, *stream_id),
            Frame::WindowUpdate { stream_id, credit } => {
                put_header(&mut buf, TAG_WINDOW_UPDATE, *stream_id);
                buf.put_u32(*credit);
            }
        }
        Ok(buf.freeze())
    }

    /// Decodes one frame body as produced by [`encode`](Self::encode).
    pub fn decode(mut body: Bytes) -> Result<Frame> {
        if body.len() < HEADER_BYTES {
            return Err(malformed(
                body.first().copied().unwrap_or(0),
                "shorter than header",
            ));
        }
        let tag = body.get_u8();
        let stream_id = body.get_u64();
        let frame = match tag {
            TAG_REQUEST => {
                if body.len() < 6 {
                    return Err(malformed(tag, "request header truncated"));
                }
                let window = body.get_u32();
                let endpoint_len = body.get_u16() as usize;
                if body.len() < endpoint_len {
                    return Err(malformed(tag, "endpoint name truncated"));
                }
                let endpoint = String::from_utf8(body.split_to(endpoint_len).to_vec())
                    .map_err(|_| malformed(tag, "endpoint name is not UTF-8"))?;
                Frame::Request {
                    stream_id,
                    window,
                    endpoint,
                    payload: body,
                }
            }
            TAG_DATA => Frame::Data {
                stream_id,
                payload: body,
            },
            TAG_END => expect_empty(tag, body, Frame::End { stream_id })?,
            TAG_ERROR => Frame::Error {
                stream_id,
                error: serde_json::from_slice(&body)
                    .map_err(|_| malformed(tag, "error body is not a WireError"))?,
            },
            TAG_CANCEL => expect_empty(tag, body, Frame::Cancel { stream_id })?,
            TAG_WINDOW_UPDATE => {
                if body.len() != 4 {
                    return Err(malformed(tag, "window update must carry exactly a u32"));
                }
                Frame::WindowUpdate {
                    stream_id,
                    credit: body.get_u32(),
                }
            }
            _ => return Err(malformed(tag, "unknown tag")),
        };
        Ok(frame)
    }
}

/// The length-prefix codec both sides use; frames above `max_frame_bytes` are rejected with an
/// I/O error on read and refused on write.
pub fn codec(max_frame_bytes: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .max_frame_length(max_frame_bytes)
        .new_codec()
}

fn put_header(buf: &mut BytesMut, tag: u8, stream_id: StreamId) {
    buf.put_u8(tag);
    buf.put_u64(stream_id);
}

fn error_json(error: &WireError) -> Vec<u8> {
    serde_json::to_vec(error).expect("invariant: WireError always serializes")
}

fn expect_empty(tag: u8, body: Bytes, frame: Frame) -> Result<Frame> {
    if body.is_empty() {
        Ok(frame)
    } else {
        Err(malformed(tag, "unexpected bytes after header"))
    }
}

fn malformed(tag: u8, reason: &'static str) -> Error {
    Error::MalformedFrame { tag, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_protocol::ErrorKind;

    fn round_trip(frame: Frame) {
        let bytes = frame.encode().expect("encodes");
        assert_eq!(bytes.len(), frame.encoded_len(), "encoded_len of {frame:?}");
        assert_eq!(Frame::decode(bytes).expect("decodes"), frame);
    }

    #[test]
    fn every_frame_round_trips() {
        round_trip(Frame::Request {
            stream_id: 7,
            window: 32,
            endpoint: "ns/worker/generate".into(),
            payload: Bytes::from_static(b"{\"x\":1}"),
        });
        round_trip(Frame::Data {
            stream_id: u64::MAX,
            payload: Bytes::from_static(b"\x00\x01\x02"),
        });
        round_trip(Frame::Data {
            stream_id: 1,
            payload: Bytes::new(),
        });
        round_trip(Frame::End { stream_id: 3 });
        round_trip(Frame::Error {
            stream_id: 4,
            error: WireError::new(ErrorKind::Overloaded, "busy"),
        });
        round_trip(Frame::Cancel { stream_id: 5 });
        round_trip(Frame::WindowUpdate {
            stream_id: 6,
            credit: 16,
        });
    }

    #[test]
    fn request_layout_is_exact() {
        let bytes = Frame::Request {
            stream_id: 0x0102,
            window: 3,
            endpoint: "ab".into(),
            payload: Bytes::from_static(b"P"),
        }
        .encode()
        .expect("encodes");
        assert_eq!(
            bytes.as_ref(),
            &[1, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 3, 0, 2, b'a', b'b', b'P']
        );
    }

    #[test]
    fn malformed_frames_are_errors() {
        let cases: [(&[u8], u8, &str); 5] = [
            (&[2, 0, 0], 2, "shorter than header"),
            (&[9, 0, 0, 0, 0, 0, 0, 0, 1], 9, "unknown tag"),
            (
                &[1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
                1,
                "request header truncated",
            ),
            (
                &[1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 5, b'a'],
                1,
                "endpoint name truncated",
            ),
            (
                &[3, 0, 0, 0, 0, 0, 0, 0, 1, 7],
                3,
                "unexpected bytes after header",
            ),
        ];
        for (bytes, want_tag, want_reason) in cases {
            match Frame::decode(Bytes::copy_from_slice(bytes)) {
                Err(Error::MalformedFrame { tag, reason }) => {
                    assert_eq!((tag, reason), (want_tag, want_reason), "{bytes:?}")
                }
                other => panic!("{bytes:?} decoded to {other:?}"),
            }
        }
    }
}
