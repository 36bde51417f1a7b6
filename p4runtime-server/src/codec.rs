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

use std::marker::PhantomData;

use prost::bytes::Buf;
use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::ProstEncoder;

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

impl<U: Message + Default> Decoder for BytesDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // The buffer holds the whole message: splitting it off copies nothing.
        let message = buf.copy_to_bytes(buf.remaining());
        U::decode(message)
            .map(Some)
            // As `ProstCodec`: a message that does not parse is INTERNAL.
            .map_err(|e| Status::internal(e.to_string()))
    }
}
