//! Admin frames: any bytes as a hello, request or response body. Must never
//! panic or allocate beyond the frame cap; what decodes must re-encode to
//! itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pos_proto::{decode, encode, Hello, Request, Response, Welcome};

fn round_trip<T>(body: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(msg) = decode::<T>(body) {
        let again: T = decode(&encode(&msg)).expect("re-encoded frame decodes");
        assert_eq!(again, msg);
    }
}

fuzz_target!(|body: &[u8]| {
    round_trip::<Hello>(body);
    round_trip::<Welcome>(body);
    round_trip::<Request>(body);
    round_trip::<Response>(body);
});
