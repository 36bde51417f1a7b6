//! The gRPC codec of the generated services: prost messages, each decoded
//! from one `Bytes` rather than through tonic's `DecodeBuf`.
//!
//! tonic hands a decoder the whole message inside its receive buffer, behind
//! a `DecodeBuf` whose every read goes through a bounds check and
//! `BytesMut::advance`; a 10,000-update Write is over a hundred thousand
//! such reads. Splitting the message off as a `Bytes` costs one reference
//! count, after which prost reads a plain pointer and length: decoding a
//! 10,000-update WriteRequest this way takes about 30% less CPU time
//! (`examples/write_cost.rs`). Encoding is prost's, as in `ProstCodec`.
//!
//! A `WriteRequest`'s vector of updates is also sized before decoding:
//! prost grows it one push at a time, and for 10,000 updates the
//! reallocations (and copies) of the growing vector are ~10% of decoding
//! a 10,000-update request.

use std::any::Any;
use std::marker::PhantomData;

use prost::bytes::{Buf, Bytes};
use prost::{DecodeError, Message};
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::ProstEncoder;

use crate::proto::p4::v1::WriteRequest;

/// A [`Codec`] for prost messages, `application/grpc+proto` on the wire
/// like `tonic_prost::ProstCodec`; see the module documentation.
#[derive(Debug, Clone)]
pub struct P4rtCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for P4rtCodec<T, U> {
    fn default() -> Self {
        P4rtCodec { _pd: PhantomData }
    }
}

impl<T, U> Codec for P4rtCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = BytesDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder { _pd: PhantomData }
    }
}

/// Decodes a `U` from the message split off tonic's buffer as `Bytes`.
#[derive(Debug, Clone)]
pub struct BytesDecoder<U> {
    _pd: PhantomData<U>,
}

impl<U: Message + Default + 'static> Decoder for BytesDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // The buffer holds the whole message: splitting it off copies nothing.
        let message = buf.copy_to_bytes(buf.remaining());
        decode(message)
            .map(Some)
            // As `ProstCodec`: a message that does not parse is INTERNAL.
            .map_err(|e| Status::internal(e.to_string()))
    }
}

/// Decodes a `U` from the whole of `message`, as the codec's decoder does
/// (for benchmarks and tests of the server's decoding).
pub fn decode<U: Message + Default + 'static>(message: Bytes) -> Result<U, DecodeError> {
    let mut item = U::default();
    if let Some(req) = (&mut item as &mut dyn Any).downcast_mut::<WriteRequest>() {
        // An update that does anything takes well over 16 bytes: a message
        // of empty or broken ones gets no more room up front than that.
        req.updates
            .reserve(count_updates(&message).min(message.len() / 16));
    }
    item.merge(message)?;
    Ok(item)
}

/// The `updates` (field 4) at the top level of an encoded `WriteRequest`,
/// skipping over their contents. Only a hint for sizing: malformed input
/// ends the count, and the decode that follows reports it.
fn count_updates(mut msg: &[u8]) -> usize {
    const UPDATES: u64 = 4;
    let mut n = 0;
    while let Some(key) = varint(&mut msg) {
        let skip = match key & 7 {
            // Varint: read it.
            0 => match varint(&mut msg) {
                Some(_) => 0,
                None => break,
            },
            // 64 bits.
            1 => 8,
            // Length-delimited.
            2 => match varint(&mut msg).and_then(|len| usize::try_from(len).ok()) {
                Some(len) => len,
                None => break,
            },
            // 32 bits.
            5 => 4,
            // Groups (deprecated, not in P4Runtime) or garbage.
            _ => break,
        };
        let Some(rest) = msg.get(skip..) else { break };
        msg = rest;
        if key == UPDATES << 3 | 2 {
            n += 1;
        }
    }
    n
}

/// Reads a base-128 varint off the front of `b`.
fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::p4::v1::{Uint128, Update};

    #[test]
    fn updates_are_counted_over_every_wire_type() {
        let req = WriteRequest {
            device_id: 1 << 40,
            role: "r".into(),
            election_id: Some(Uint128 { high: 1, low: 2 }),
            updates: vec![Update::default(); 300],
            atomicity: 2,
            ..Default::default()
        };
        let wire = req.encode_to_vec();
        assert_eq!(count_updates(&wire), 300);
        // A truncated message counts what it holds.
        assert!(count_updates(&wire[..wire.len() / 2]) < 300);
        assert_eq!(count_updates(&[0xff; 20]), 0);
        assert_eq!(count_updates(&[]), 0);
    }

    #[test]
    fn decodes_as_prost_does() {
        let req = WriteRequest {
            device_id: 7,
            updates: vec![Update::default(); 3],
            ..Default::default()
        };
        let wire = Bytes::from(req.encode_to_vec());
        assert_eq!(decode::<WriteRequest>(wire.clone()), Ok(req));
        let other = decode::<crate::proto::p4::v1::ReadRequest>(wire.clone());
        assert_eq!(
            other,
            crate::proto::p4::v1::ReadRequest::decode(wire.clone())
        );
        assert!(decode::<WriteRequest>(wire.slice(..wire.len() - 1)).is_err());
    }
}
