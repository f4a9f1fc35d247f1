//! `docs/PROTOCOL.md` is checked against the code, so a change of the wire
//! format fails here until the document is updated.
//!
//! * Golden vectors: fenced blocks opened with ```` ```hex name=NAME layer=LAYER ````
//!   (`LAYER` is `payload`, `serial` or `tcp`) hold hex bytes; `#` starts a comment
//!   that runs to the end of the line. Every example in [`examples`] must appear
//!   with at least its `payload` and `serial` layers, and every block must belong
//!   to an example. The payload must equal the encoder's output and decode back;
//!   the frames must equal what the framing produces and reassemble to the payload.
//!   The examples of [`sealed`] (frames after `Welcome`) also have a `sealed` layer,
//!   the payload with its authentication trailer, and their frames carry that.
//! * Wire tables: a table right after `<!-- wire: TYPE -->` lists an enum's
//!   variants (tag, name, fields) or a struct's fields, in wire order.
//! * The chunk overhead table after `<!-- wire: chunk-overhead -->`.
//!
//! On a mismatch the failure message prints the block as it should read.

mod schema;

use std::collections::{BTreeMap, BTreeSet};

use proto_core::auth::{client_tag, server_tag, ContentHasher};
use proto_core::error::ErrorCode;
use proto_core::framing::mac::{Direction, Opener, Sealer, SessionKey};
use proto_core::framing::{Accumulator, Feed, Framing};
use proto_core::message::{
    ByteRange, ClientFrame, ClientMessage, ServerFrame, ServerMessage, EVENT_ID, PROTOCOL_VERSION,
};
use proto_core::model::{
    At, BatchSummary, ContentHash, DeviceInfo, DownloadEntry, DownloadState, FileKind,
    HistoryEntry, HistoryKind, LinkKind, ListFilter, Record,
};
use proto_core::provision::{accepted_proof, request, ProvisionMessage, Refusal};
use proto_core::state::{StateCounts, UploadState};

use schema::{struct_fields, variants, Shape};

/// The document under test; `include_str!` makes cargo rebuild this test when it changes.
const DOC: &str = include_str!("../../docs/PROTOCOL.md");

/// The pre-shared key of the examples' device (ASCII).
const KEY: &[u8] = b"demo-key-for-board-1";
/// The examples' device.
const DEVICE: &str = "board-1";
/// The examples' client nonce: 00 01 … 0f.
const CLIENT_NONCE: [u8; 16] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
];
/// The examples' server nonce: a0 a1 … af.
const SERVER_NONCE: [u8; 16] = [
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
];
/// The examples' file.
const FILE_NAME: &str = "logs/2026-03-01.csv";
/// Its size: 1 MiB.
const FILE_SIZE: u64 = 1 << 20;
/// 2026-03-01T00:00:00Z.
const MARCH_FIRST: u64 = 1_772_323_200;

/// The provisioning examples' board nonce: b0 b1 … bf.
const BOARD_NONCE: [u8; 16] = [
    0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
];
/// The provisioning examples' new device.
const NEW_DEVICE: &str = "board-2";
/// The provisioning examples' new key: 20 21 … 3f.
const NEW_KEY: [u8; 32] = [
    0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f,
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f,
];

/// A golden example: a frame of either direction, or a provisioning frame.
#[derive(Clone, Copy, Debug)]
enum Frame {
    Client(ClientFrame<'static>),
    Server(ServerFrame<'static>),
    Provision(ProvisionMessage<'static>),
}

impl Frame {
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; 2048];
        let len = match self {
            Frame::Client(frame) => frame.encode(&mut out).map(|used| used.len()),
            Frame::Server(frame) => frame.encode(&mut out).map(|used| used.len()),
            Frame::Provision(message) => message.encode(&mut out).map(|used| used.len()),
        }
        .expect("examples fit 2 KiB");
        out.truncate(len);
        out
    }

    /// The frame's payload on the wire: sealed for the examples of [`sealed`].
    fn wire_payload(&self, name: &str) -> Vec<u8> {
        let payload = self.encode();
        match sealed(name) {
            Some(sequence) => seal(self.direction(), sequence, &payload),
            None => payload,
        }
    }

    fn direction(&self) -> Direction {
        match self {
            Frame::Client(_) => Direction::ClientToServer,
            Frame::Server(_) => Direction::ServerToClient,
            Frame::Provision(_) => unreachable!("provisioning frames are never sealed"),
        }
    }

    fn decodes_from(&self, bytes: &[u8]) -> bool {
        match self {
            Frame::Client(frame) => ClientFrame::decode(bytes) == Ok(*frame),
            Frame::Server(frame) => ServerFrame::decode(bytes) == Ok(*frame),
            Frame::Provision(message) => ProvisionMessage::decode(bytes) == Ok(*message),
        }
    }
}

/// The examples sent after `Welcome` whose trailer the document shows, with their
/// sequence numbers.
fn sealed(name: &str) -> Option<u64> {
    match name {
        "ping" => Some(0),
        "pong" => Some(2),
        _ => None,
    }
}

/// The example session's key for one direction.
fn session_key(direction: Direction) -> SessionKey {
    SessionKey::derive(KEY, &CLIENT_NONCE, &SERVER_NONCE, DEVICE, direction)
}

/// `payload ‖ trailer` as the sender seals it as frame `sequence` of its direction.
fn seal(direction: Direction, sequence: u64, payload: &[u8]) -> Vec<u8> {
    let mut sealer = Sealer::new(session_key(direction));
    let mut out = vec![0u8; payload.len() + 9];
    for _ in 0..=sequence {
        out[..payload.len()].copy_from_slice(payload);
        let len = sealer
            .seal(&mut out, payload.len())
            .expect("room for the trailer");
        out.truncate(len);
    }
    out
}

/// The examples' content hash: SHA-256 of `abc` (FIPS 180-2's test vector) stands in for the file's.
fn file_hash() -> ContentHash {
    ContentHasher::digest(b"abc")
}

/// The record of the examples, half uploaded.
fn record() -> Record<'static> {
    Record {
        id: 42,
        name: FILE_NAME,
        kind: FileKind::File,
        size: FILE_SIZE,
        hash: file_hash(),
        state: UploadState::Uploading,
        received: 532_480,
        owner: DEVICE,
        batch: 3,
        revision: 118,
        updated_at: MARCH_FIRST,
        conflict: false,
        reason: "",
    }
}

/// Every golden example, by the name its blocks carry in the document.
fn examples() -> BTreeMap<&'static str, Frame> {
    use ClientMessage as C;
    use Frame::{Client, Server};
    use ServerMessage as S;
    let client = |id, message| Client(ClientFrame { id, message });
    let server = |id, message| Server(ServerFrame { id, message });
    BTreeMap::from([
        (
            "hello",
            client(
                1,
                C::Hello {
                    version: PROTOCOL_VERSION,
                    max_frame: 4096,
                    device: DEVICE,
                    nonce: CLIENT_NONCE,
                },
            ),
        ),
        (
            "challenge",
            server(
                1,
                S::Challenge {
                    version: PROTOCOL_VERSION,
                    max_frame: 65_536,
                    nonce: SERVER_NONCE,
                },
            ),
        ),
        (
            "authenticate",
            client(
                2,
                C::Authenticate {
                    mac: client_tag(KEY, &SERVER_NONCE, &CLIENT_NONCE, DEVICE),
                },
            ),
        ),
        (
            "welcome",
            server(
                2,
                S::Welcome {
                    device: DEVICE,
                    revision: 117,
                    max_frame: 4096,
                    mac: server_tag(KEY, &SERVER_NONCE, &CLIENT_NONCE, DEVICE),
                },
            ),
        ),
        (
            "manifest-entry",
            client(
                4,
                C::ManifestEntry {
                    index: 0,
                    name: FILE_NAME,
                    kind: FileKind::File,
                    size: FILE_SIZE,
                    hash: Some(file_hash()),
                },
            ),
        ),
        (
            "entry-held",
            server(
                5,
                S::EntryHeld {
                    index: 0,
                    record: 42,
                },
            ),
        ),
        (
            "batch-created",
            server(
                5,
                S::BatchCreated {
                    batch: 3,
                    records: 1,
                    conflicts: 0,
                    held: 1,
                },
            ),
        ),
        (
            "upload-ready",
            server(
                6,
                S::UploadReady {
                    upload: 1,
                    record: 42,
                    offset: 524_288,
                    window: 8192,
                },
            ),
        ),
        (
            "upload-chunk",
            client(
                7,
                C::UploadChunk {
                    upload: 1,
                    offset: 524_288,
                    data: b"t,temp\n0,21.5\n",
                },
            ),
        ),
        (
            "upload-ack-missing",
            server(
                6,
                S::UploadAck {
                    upload: 1,
                    durable: 532_480,
                    missing: Some(ByteRange {
                        offset: 532_480,
                        len: 1024,
                    }),
                },
            ),
        ),
        (
            "upload-close-hash",
            client(
                8,
                C::UploadClose {
                    upload: 1,
                    hash: Some(file_hash()),
                },
            ),
        ),
        (
            "download-rejected",
            server(
                9,
                S::DownloadRejected {
                    record: 42,
                    state: UploadState::Uploading,
                    received: 532_480,
                    size: FILE_SIZE,
                    notify: true,
                },
            ),
        ),
        (
            "record-changed",
            server(EVENT_ID, S::RecordChanged(record())),
        ),
        (
            "download-available",
            server(
                EVENT_ID,
                S::DownloadAvailable {
                    record: 42,
                    name: FILE_NAME,
                    size: FILE_SIZE,
                    hash: file_hash(),
                },
            ),
        ),
        (
            "download-item",
            server(
                13,
                S::DownloadItem(DownloadEntry {
                    device: "board-2",
                    record: 42,
                    name: FILE_NAME,
                    state: DownloadState::Failed,
                    acknowledged: 65_536,
                    size: FILE_SIZE,
                    detail: "connection lost after 65536 of 1048576 bytes",
                }),
            ),
        ),
        (
            "list-end",
            server(
                12,
                S::ListEnd {
                    revision: 118,
                    count: 3,
                },
            ),
        ),
        (
            "list-at",
            client(
                14,
                C::ListAt {
                    at: At::Revision { revision: 117 },
                },
            ),
        ),
        (
            "restore",
            client(
                15,
                C::Restore {
                    name: FILE_NAME,
                    at: None,
                },
            ),
        ),
        (
            "restored",
            server(
                15,
                S::Restored(Record {
                    state: UploadState::Uploaded,
                    received: FILE_SIZE,
                    batch: 0,
                    revision: 121,
                    ..record()
                }),
            ),
        ),
        ("ping", client(3, C::Ping)),
        ("pong", server(3, S::Pong)),
        (
            "error",
            server(
                11,
                S::Error {
                    code: ErrorCode::Conflict,
                    message: "board-2 owns this name",
                },
            ),
        ),
        (
            "provision-offer",
            Frame::Provision(ProvisionMessage::Offer {
                nonce: BOARD_NONCE,
                device: Some(DEVICE),
            }),
        ),
        (
            "provision-request",
            Frame::Provision(request(BOARD_NONCE, Some(KEY), NEW_DEVICE, &NEW_KEY)),
        ),
        (
            "provision-accepted",
            Frame::Provision(ProvisionMessage::Accepted {
                device: NEW_DEVICE,
                proof: accepted_proof(&NEW_KEY, &BOARD_NONCE, NEW_DEVICE),
            }),
        ),
        (
            "provision-refused",
            Frame::Provision(ProvisionMessage::Refused {
                reason: Refusal::NotAuthorized,
            }),
        ),
    ])
}

/// One ```` ```hex ```` block of the document.
#[derive(Debug)]
struct HexBlock {
    name: String,
    layer: String,
    bytes: Vec<u8>,
    line: usize,
}

/// Every ```` ```hex name=… layer=… ```` block, parsed. Panics (fails the test) on a malformed one.
fn hex_blocks(doc: &str) -> Vec<HexBlock> {
    let mut blocks = Vec::new();
    let mut lines = doc.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let Some(info) = line.trim().strip_prefix("```hex") else {
            continue;
        };
        let attribute = |key: &str| {
            info.split_whitespace()
                .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("PROTOCOL.md:{}: hex block without `{key}=`", index + 1))
                .to_string()
        };
        let (name, layer) = (attribute("name"), attribute("layer"));
        let mut bytes = Vec::new();
        for (body_index, body) in lines.by_ref() {
            if body.trim() == "```" {
                break;
            }
            let data = body.split('#').next().unwrap_or("");
            for word in data.split_whitespace() {
                let byte = (word.len() == 2)
                    .then(|| u8::from_str_radix(word, 16).ok())
                    .flatten()
                    .unwrap_or_else(|| {
                        panic!("PROTOCOL.md:{}: `{word}` is not a hex byte", body_index + 1)
                    });
                bytes.push(byte);
            }
        }
        blocks.push(HexBlock {
            name,
            layer,
            bytes,
            line: index + 1,
        });
    }
    blocks
}

/// Hex, 16 bytes a line, as the document writes it.
fn hex_lines(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|line| {
            line.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn should_read(name: &str, layer: &str, bytes: &[u8]) -> String {
    format!(
        "it should read:\n```hex name={name} layer={layer}\n{}\n```",
        hex_lines(bytes)
    )
}

fn framed(framing: Framing, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; framing.max_wire_len(payload.len())];
    let len = framing
        .encode(payload, &mut out)
        .expect("max_wire_len is enough");
    out.truncate(len);
    out
}

/// Feeds a whole wire frame to a fresh accumulator one byte at a time; returns the one payload.
fn reassemble(framing: Framing, wire: &[u8]) -> Vec<u8> {
    let mut accumulator = Accumulator::new(framing, vec![0u8; 4096]);
    let mut payloads = Vec::new();
    for byte in wire.chunks(1) {
        match accumulator.feed(byte) {
            Feed::Consumed => {}
            Feed::Frame { payload, remaining } => {
                assert!(remaining.is_empty());
                payloads.push(payload.to_vec());
            }
            Feed::Error { error, .. } => panic!("{framing:?} frame refused: {error:?}"),
        }
    }
    assert_eq!(payloads.len(), 1, "one wire frame holds one payload");
    payloads.remove(0)
}

#[test]
fn every_golden_example_is_in_the_document_and_every_block_is_an_example() {
    let examples = examples();
    let blocks = hex_blocks(DOC);
    assert!(!blocks.is_empty(), "PROTOCOL.md has no ```hex blocks");
    let layers: BTreeSet<(&str, &str)> = blocks
        .iter()
        .map(|b| (b.name.as_str(), b.layer.as_str()))
        .collect();
    assert_eq!(
        layers.len(),
        blocks.len(),
        "a name/layer pair appears twice"
    );
    for block in &blocks {
        assert!(
            examples.contains_key(block.name.as_str()),
            "PROTOCOL.md:{}: `{}` is not an example of golden.rs",
            block.line,
            block.name
        );
        assert!(
            ["payload", "sealed", "serial", "tcp"].contains(&block.layer.as_str()),
            "PROTOCOL.md:{}: unknown layer `{}`",
            block.line,
            block.layer
        );
    }
    for (name, frame) in &examples {
        let payload = frame.encode();
        let wire_payload = frame.wire_payload(name);
        let sealed_layer = sealed(name).map(|_| "sealed");
        for layer in ["payload", "serial"].into_iter().chain(sealed_layer) {
            let bytes = match layer {
                "payload" => payload.clone(),
                "sealed" => wire_payload.clone(),
                _ => framed(Framing::Serial, &wire_payload),
            };
            assert!(
                layers.contains(&(name, layer)),
                "PROTOCOL.md lacks the {layer} of `{name}`; {}",
                should_read(name, layer, &bytes)
            );
        }
    }
    assert!(
        layers.iter().filter(|(_, layer)| *layer == "tcp").count() >= 2,
        "PROTOCOL.md shows fewer than two TCP frames"
    );
}

#[test]
fn golden_payloads_are_what_the_encoder_writes_and_decode_back() {
    let examples = examples();
    let blocks = hex_blocks(DOC);
    let mut checked = 0;
    for block in blocks.iter().filter(|b| b.layer == "payload") {
        let frame = examples[block.name.as_str()];
        let payload = frame.encode();
        assert!(
            block.bytes == payload,
            "PROTOCOL.md:{}: payload of `{}` is out of date; {}",
            block.line,
            block.name,
            should_read(&block.name, "payload", &payload)
        );
        assert!(
            frame.decodes_from(&block.bytes),
            "`{}` does not decode back",
            block.name
        );
        checked += 1;
    }
    assert_eq!(checked, examples.len());
}

#[test]
fn golden_wire_frames_are_what_the_framings_write_and_reassemble() {
    let examples = examples();
    let mut checked = 0;
    let layers = ["serial", "tcp"];
    for block in hex_blocks(DOC)
        .iter()
        .filter(|b| layers.contains(&b.layer.as_str()))
    {
        let frame = examples[block.name.as_str()];
        let payload = frame.wire_payload(&block.name);
        let framing = if block.layer == "serial" {
            Framing::Serial
        } else {
            Framing::Length
        };
        let wire = framed(framing, &payload);
        assert!(
            block.bytes == wire,
            "PROTOCOL.md:{}: {} frame of `{}` is out of date; {}",
            block.line,
            block.layer,
            block.name,
            should_read(&block.name, &block.layer, &wire)
        );
        let mut reassembled = reassemble(framing, &block.bytes);
        if let Some(sequence) = sealed(&block.name) {
            reassembled = open(frame.direction(), sequence, &reassembled);
        }
        assert!(
            frame.decodes_from(&reassembled),
            "`{}` does not decode back",
            block.name
        );
        checked += 1;
    }
    assert!(checked >= examples.len() + 2);
}

/// Opens a frame sealed as `sequence` of its direction, as a receiver expecting it would.
fn open(direction: Direction, sequence: u64, sealed: &[u8]) -> Vec<u8> {
    let mut opener = Opener::new(session_key(direction));
    let payload = opener.open(sealed).expect("the example opens").to_vec();
    assert_eq!(opener.expected(), sequence + 1);
    payload
}

#[test]
fn sealed_examples_are_the_payload_and_its_trailer_and_open_back() {
    let examples = examples();
    let blocks = hex_blocks(DOC);
    let mut checked = 0;
    for block in blocks.iter().filter(|b| b.layer == "sealed") {
        let frame = examples[block.name.as_str()];
        let sequence = sealed(&block.name).expect("a sealed example");
        let sealed = frame.wire_payload(&block.name);
        assert!(
            block.bytes == sealed,
            "PROTOCOL.md:{}: sealed payload of `{}` is out of date; {}",
            block.line,
            block.name,
            should_read(&block.name, "sealed", &sealed)
        );
        assert!(frame.decodes_from(&open(frame.direction(), sequence, &block.bytes)));
        let mut forged = block.bytes.clone();
        forged[0] ^= 1;
        assert!(
            Opener::new(session_key(frame.direction()))
                .open(&forged)
                .is_err(),
            "a changed byte must fail"
        );
        checked += 1;
    }
    assert_eq!(checked, 2, "the ping and pong examples");
}

#[test]
fn the_authentication_example_carries_real_tags() {
    // The document tells readers they can check their HMAC against the example.
    assert!(DOC.contains(&format!("`{}`", std::str::from_utf8(KEY).unwrap())));
    let Frame::Client(ClientFrame {
        message: ClientMessage::Authenticate { mac },
        ..
    }) = examples()["authenticate"]
    else {
        panic!("the authenticate example is an Authenticate");
    };
    assert_eq!(mac, client_tag(KEY, &SERVER_NONCE, &CLIENT_NONCE, DEVICE));
}

/// The rows of the table right after `<!-- wire: NAME -->`, each split into trimmed cells,
/// header and separator rows left out.
fn wire_table(name: &str) -> Vec<Vec<String>> {
    let marker = format!("<!-- wire: {name} -->");
    let start = DOC
        .find(&marker)
        .unwrap_or_else(|| panic!("PROTOCOL.md has no `{marker}`"));
    let rows: Vec<Vec<String>> = DOC[start + marker.len()..]
        .lines()
        .skip_while(|line| line.trim().is_empty())
        .take_while(|line| line.trim_start().starts_with('|'))
        .map(|line| {
            let line = line.trim().trim_start_matches('|').trim_end_matches('|');
            line.split('|')
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect();
    assert!(rows.len() > 2, "the table after `{marker}` is empty");
    rows.into_iter().skip(2).collect()
}

/// The text inside each pair of backticks of a cell.
fn code_spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// The field names a cell lists as `` `name: type` ``, in order.
fn field_names(cell: &str) -> Vec<&str> {
    code_spans(cell)
        .into_iter()
        .filter_map(|span| span.split_once(':').map(|(name, _)| name.trim()))
        .collect()
}

/// Checks an enum's table: one row per variant, in tag order, with its name and its fields.
fn check_enum_table<'de, T: serde::Deserialize<'de>>(table: &str) {
    let rows = wire_table(table);
    let variants = variants::<T>();
    let documented: Vec<String> = rows
        .iter()
        .map(|row| format!("{} {}", row[0], row[1]))
        .collect();
    let actual: Vec<String> = variants
        .iter()
        .map(|v| format!("{} `{}`", v.tag, v.name))
        .collect();
    assert_eq!(documented, actual, "the `{table}` table's tags and names");
    for (row, variant) in rows.iter().zip(&variants) {
        let Some(cell) = row.get(2) else { continue };
        match variant.shape {
            Shape::Unit => assert!(
                field_names(cell).is_empty(),
                "`{table}::{}` has no fields on the wire",
                variant.name
            ),
            Shape::Struct(fields) => {
                assert_eq!(
                    field_names(cell),
                    fields,
                    "fields of `{table}::{}`",
                    variant.name
                )
            }
            Shape::Newtype(inner) => {
                assert_eq!(
                    code_spans(cell),
                    [inner],
                    "content of `{table}::{}`",
                    variant.name
                )
            }
            Shape::Tuple(_) => panic!(
                "`{table}::{}`: tuple variants are not documented",
                variant.name
            ),
        }
    }
}

/// Checks a struct's table: one row per field, in wire order.
fn check_struct_table<'de, T: serde::Deserialize<'de>>() {
    let (name, fields) = struct_fields::<T>();
    let documented: Vec<String> = wire_table(name)
        .into_iter()
        .map(|row| row[0].clone())
        .collect();
    let actual: Vec<String> = fields.iter().map(|field| format!("`{field}`")).collect();
    assert_eq!(documented, actual, "the `{name}` table's fields");
}

#[test]
fn message_tables_list_every_variant_with_its_tag_and_fields() {
    check_enum_table::<ClientMessage<'static>>("ClientMessage");
    check_enum_table::<ServerMessage<'static>>("ServerMessage");
}

#[test]
fn model_tables_list_every_field_and_variant_in_wire_order() {
    check_struct_table::<ClientFrame<'static>>();
    check_struct_table::<ServerFrame<'static>>();
    check_struct_table::<ByteRange>();
    check_struct_table::<Record<'static>>();
    check_struct_table::<BatchSummary<'static>>();
    check_struct_table::<StateCounts>();
    check_struct_table::<DeviceInfo<'static>>();
    check_struct_table::<DownloadEntry<'static>>();
    check_struct_table::<HistoryEntry<'static>>();
    check_enum_table::<FileKind>("FileKind");
    check_enum_table::<UploadState>("UploadState");
    check_enum_table::<DownloadState>("DownloadState");
    check_enum_table::<ListFilter>("ListFilter");
    check_enum_table::<At>("At");
    check_enum_table::<LinkKind>("LinkKind");
    check_enum_table::<HistoryKind>("HistoryKind");
}

#[test]
fn provisioning_tables_list_every_variant_with_its_tag_and_fields() {
    check_enum_table::<ProvisionMessage<'static>>("ProvisionMessage");
    check_enum_table::<Refusal>("Refusal");
}

#[test]
fn upload_state_tags_are_its_bits() {
    // The table documents one number for both; that only holds while they agree.
    for state in UploadState::ALL {
        let mut out = [0u8; 1];
        let tag = postcard::to_slice(&state, &mut out).expect("one byte")[0];
        assert_eq!(tag, state.bits(), "{state:?}");
    }
}

#[test]
fn error_code_table_gives_every_code_its_tag_and_message() {
    check_enum_table::<ErrorCode>("ErrorCode");
    for row in wire_table("ErrorCode") {
        let tag: u8 = row[0].parse().expect("a tag");
        let code: ErrorCode = postcard::from_bytes(&[tag]).expect("a known tag");
        assert_eq!(row[2], code.message(), "message of {code:?}");
    }
}

/// The frame whose overhead the document states: a 1 KiB chunk at offset 1 MiB,
/// request id 1029 (a session that sent a thousand chunks), upload 1; data without
/// zero bytes, the worst case for COBS.
fn kibibyte_chunk(data: &[u8]) -> ClientFrame<'_> {
    ClientFrame {
        id: 1029,
        message: ClientMessage::UploadChunk {
            upload: 1,
            offset: 1 << 20,
            data,
        },
    }
}

#[test]
fn chunk_overhead_in_the_document_is_exact() {
    let data: Vec<u8> = (0..1024u32).map(|i| (i % 255 + 1) as u8).collect();
    let mut out = vec![0u8; 2048];
    let payload = kibibyte_chunk(&data)
        .encode(&mut out)
        .expect("fits")
        .to_vec();
    let serial = framed(Framing::Serial, &payload).len();
    let tcp = framed(Framing::Length, &payload).len();
    assert!(payload.len() - data.len() <= proto_core::message::CHUNK_MESSAGE_OVERHEAD);
    assert_eq!(
        serial,
        Framing::Serial.max_wire_len(payload.len()),
        "zero-free data is COBS's worst case"
    );

    let rows = wire_table("chunk-overhead");
    let row = |framing: &str| -> Vec<usize> {
        let row = rows
            .iter()
            .find(|row| row[0].starts_with(framing))
            .unwrap_or_else(|| panic!("the overhead table has no {framing} row"));
        row[1..4]
            .iter()
            .map(|cell| cell.parse().expect("a number"))
            .collect()
    };
    let expect = |wire: usize| vec![payload.len(), wire, wire - data.len()];
    assert_eq!(
        row("serial"),
        expect(serial),
        "serial row: payload, wire, overhead"
    );
    assert_eq!(row("TCP"), expect(tcp), "TCP row: payload, wire, overhead");
}

#[test]
fn the_receive_buffer_example_is_exact() {
    assert!(DOC.contains("4,118 bytes for `max_frame = 4096`"));
    assert_eq!(Framing::Serial.max_wire_len(4096), 4118);
}

#[test]
fn the_largest_record_fills_min_frame_with_a_117_byte_reason() {
    // The document promises this; a server must keep reasons within it.
    assert!(DOC.contains("fills `MIN_FRAME` exactly with a 117-byte reason"));
    let name = "n".repeat(proto_core::name::MAX_NAME_LEN);
    let owner = "o".repeat(proto_core::name::MAX_DEVICE_NAME_LEN);
    let reason = "r".repeat(117);
    let frame = ServerFrame {
        id: u16::MAX,
        message: ServerMessage::UploadResult {
            upload: u32::MAX,
            record: Record {
                id: u64::MAX,
                name: &name,
                kind: FileKind::Directory,
                size: u64::MAX,
                hash: ContentHash([0xff; 32]),
                state: UploadState::Uploaded,
                received: u64::MAX,
                owner: &owner,
                batch: u64::MAX,
                revision: u64::MAX,
                updated_at: u64::MAX,
                conflict: true,
                reason: &reason,
            },
        },
    };
    let mut out = [0u8; 1024];
    let len = frame.encode(&mut out).expect("fits 1 KiB").len();
    assert_eq!(len, proto_core::message::MIN_FRAME as usize);
}

#[test]
fn padded_varints_decode_as_the_document_says() {
    // "The decoder does accept varints padded with redundant `80` bytes (`81 00` for `1`)".
    assert!(DOC.contains("(`81 00` for `1`)"));
    let padded = [0x81, 0x00, 0x16 /* Ping */];
    let frame = ClientFrame::decode(&padded).expect("padded id accepted");
    assert_eq!(
        frame,
        ClientFrame {
            id: 1,
            message: ClientMessage::Ping
        }
    );
    let mut out = [0u8; 8];
    assert_eq!(
        frame.encode(&mut out).expect("fits"),
        [0x01, 0x16],
        "the encoder writes the shortest form"
    );
}
