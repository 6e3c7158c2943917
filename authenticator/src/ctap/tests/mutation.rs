//! Mutated and random requests: never a panic, always a status byte.

use super::*;

/// Mutated and random requests for every command: never a panic, always a status byte, and a
/// success body is canonical CBOR.
#[test]
fn mutated_requests_never_panic() {
    let mut a = authenticator(50);
    let made = make(&mut a, "example.com", b"u", true, vec![]);
    let seeds: Vec<Vec<u8>> = vec![
        make_credential_request("example.com", b"v", false, vec![]),
        get_assertion("example.com", Some(&made.id), None),
        get_assertion("example.com", None, None),
        request(0x06, vec![(1, int(2)), (2, int(2))]),
        request(
            0x0a,
            vec![(1, int(1)), (3, int(2)), (4, Value::Bytes(vec![0; 32]))],
        ),
        request(0x0c, vec![(1, int(64)), (3, int(0))]),
        request(0x0d, vec![(1, int(3)), (2, int_map([(1, Some(int(6)))]))]),
        vec![command::GET_INFO],
        vec![command::GET_NEXT_ASSERTION],
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut successes = 0;
    for round in 0..6000 {
        let seed = &seeds[usize::try_from(next() % 9).unwrap()];
        let mut req = seed.clone();
        match round % 4 {
            0 if req.len() > 1 => {
                let i = 1 + usize::try_from(next()).unwrap() % (req.len() - 1);
                req[i] ^= 1 << (next() % 8);
            }
            1 if req.len() > 1 => {
                let cut = 1 + usize::try_from(next()).unwrap() % (req.len() - 1);
                req.truncate(cut);
            }
            2 => {
                let i = 1 + usize::try_from(next()).unwrap() % req.len().max(1);
                req.insert(i.min(req.len()), next().to_le_bytes()[0]);
            }
            _ => {
                let len = usize::try_from(next() % 64).unwrap();
                req = (0..len).map(|_| next().to_le_bytes()[0]).collect();
            }
        }
        let resp = a.handle(&req);
        assert!(!resp.is_empty(), "empty response to {req:02x?}");
        if resp[0] == 0 && resp.len() > 1 {
            successes += 1;
            let body = decode_canonical(&resp[1..]).expect("success bodies are canonical CBOR");
            assert!(matches!(body, Value::Map(_)));
        }
    }
    assert!(
        successes > 0,
        "some mutations still succeed, so the success path was exercised"
    );
}
