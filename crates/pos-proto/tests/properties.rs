//! The frame codec over generated messages and bytes.

use pos_core::{Address, Digest};
use pos_proto::{decode, encode, read_frame, write_frame, BlockId, Request, Response};
use proptest::prelude::*;

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::Status),
        (
            any::<Option<u64>>(),
            any::<Option<u64>>(),
            any::<Option<u64>>()
        )
            .prop_map(|(from, to, last)| Request::ChainShow { from, to, last }),
        any::<u64>().prop_map(|i| Request::Block(BlockId::Index(i))),
        any::<[u8; 32]>().prop_map(|h| Request::Block(BlockId::Hash(Digest(h)))),
        any::<bool>().prop_map(|all| Request::Validators { all }),
        any::<[u8; 32]>().prop_map(|a| Request::Validator(Address(Digest(a)))),
        Just(Request::LotteryRun),
        any::<u64>().prop_map(Request::LotteryExplain),
        Just(Request::ChainVerify),
        "[0-9a-fA-F]{4,64}".prop_map(|p| Request::BlockByPrefix(p.parse().unwrap())),
        "[0-9a-f]{4,64}".prop_map(|p| Request::ValidatorByPrefix(p.parse().unwrap())),
        (any::<u64>(), any::<u64>())
            .prop_map(|(from, heartbeat_ms)| Request::ChainFollow { from, heartbeat_ms }),
        Just(Request::Export),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip_through_frames(reqs in prop::collection::vec(request(), 0..20)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut wire = Vec::new();
            for r in &reqs {
                write_frame(&mut wire, r).await.unwrap();
            }
            let mut rd = wire.as_slice();
            for r in &reqs {
                let got: Option<Request> = read_frame(&mut rd).await.unwrap();
                assert_eq!(got.as_ref(), Some(r));
            }
            assert!(read_frame::<_, Request>(&mut rd).await.unwrap().is_none());
        });
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(r) = decode::<Request>(&body) {
            prop_assert_eq!(decode::<Request>(&encode(&r)).unwrap(), r);
        }
        let _ = decode::<Response>(&body);
    }

    #[test]
    fn export_data_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let r = Response::ExportData(pos_proto::Bytes(bytes));
        prop_assert_eq!(decode::<Response>(&encode(&r)).unwrap(), r);
    }

    #[test]
    fn errors_round_trip(text in ".*") {
        let r = Response::Error(text);
        prop_assert_eq!(decode::<Response>(&encode(&r)).unwrap(), r);
    }
}
