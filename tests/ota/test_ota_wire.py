"""Every link policy and fault end to end: scripted board + real TCP + pcap analysis."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import itertools

from ota_board import ScriptedBoard

from rig.capture import CaptureUnavailable, analyze_pcap, check_capture, find_tokens
from rig.ota import OtaServer, SessionResult, Timeouts

FAST = Timeouts(connect=10, request=2, ready=2, ack=2, send=3, stall=2, linger=0.2)
IMAGE = random.Random(42).randbytes(12000)

try:
    check_capture("lo")
    CAPTURE = True
except CaptureUnavailable as exc:  # pragma: no cover - CI runs as root
    CAPTURE = False
    WHY = str(exc)


def serve(
    tmp_path: Path,
    policy: str,
    *,
    image: bytes = IMAGE,
    board_timeout: float = 1.0,
    capture: bool = True,
    **board_kw: object,
) -> tuple[object, SessionResult]:
    with OtaServer(image, policy=policy, timeouts=FAST, capture=tmp_path if capture else None) as srv:
        board = ScriptedBoard(srv.address, timeout=board_timeout, **board_kw).run()  # type: ignore[arg-type]
        res = srv.wait_session(10)
        if capture:
            assert srv.capture_error is None, srv.capture_error
    return board, res


def analysis(res: SessionResult):  # type: ignore[no-untyped-def]
    if not CAPTURE:
        pytest.skip(f"capture unavailable: {WHY}")
    assert res.pcap and Path(res.pcap).exists()
    port = int(Path(res.pcap).name.split("-")[1])
    a = analyze_pcap(res.pcap, port)
    assert a.streams["down"].startswith(b"FILE_SIZE:"), a.summary()
    assert a.duplicates_removed > 0  # loopback shows every packet twice
    return a


def test_natural_delivers_and_pcap_reassembles_the_stream(tmp_path: Path) -> None:
    board, res = serve(tmp_path, "natural")
    assert board.outcome == "ack" and res.outcome == "ack"
    a = analysis(res)
    crc = f"{zlib.crc32(IMAGE):08X}"
    assert a.streams["down"] == (
        f"FILE_SIZE:{len(IMAGE)}\nFILE_CRC:{crc}\nOTA_UPDATE\n".encode() + IMAGE + b"OTA_DONE\n"
    )
    assert a.streams["up"] == b"REQ_FW\nOTA_READY\nACK\n"
    assert [t.text for t in a.tokens if t.direction == "up"] == ["REQ_FW", "OTA_READY", "ACK"]
    assert a.retransmissions == 0 and a.flagged("F") and not a.flagged("R")


def test_per_message_puts_each_control_message_alone_on_the_wire(tmp_path: Path) -> None:
    board, res = serve(tmp_path, "per-message")
    assert board.outcome == "ack"
    a = analysis(res)
    for tok in ("FILE_SIZE:12000", "OTA_UPDATE", "OTA_DONE"):
        assert a.token_alone(tok), a.summary()
    assert a.token_alone(a.tokens[1].text)  # FILE_CRC
    data_sizes = [s.length for s in a.payload_segments("down")][3:-1]
    assert data_sizes == [1024] * 11 + [12000 - 11 * 1024], a.summary()


def test_glued_shares_segments_between_control_and_data(tmp_path: Path) -> None:
    board, res = serve(tmp_path, "glued")
    assert board.outcome == "ack"
    a = analysis(res)
    first = a.payload_segments("down")[0]
    assert first.payload.endswith(b"OTA_UPDATE\n") and first.payload.startswith(b"FILE_SIZE:")
    assert a.token_glued("OTA_DONE") and a.token_glued("FILE_SIZE:12000")
    last = a.payload_segments("down")[-1]
    assert last.payload.endswith(b"OTA_DONE\n") and last.length > len(b"OTA_DONE\n")


def test_split_tokens_splits_every_token_across_two_segments(tmp_path: Path) -> None:
    board, res = serve(tmp_path, "split-tokens")
    assert board.outcome == "ack"
    a = analysis(res)
    for t in [t for t in a.tokens if t.direction == "down"]:
        segs = a.segments_of(t)
        assert len(segs) == 2 and segs[0].offset == t.start, (t, a.summary())
        assert segs[1].offset + segs[1].length == t.end


def test_tiny_segments_never_exceed_the_size(tmp_path: Path) -> None:
    image = IMAGE[:1500]
    board, res = serve(tmp_path, "tiny:size=7", image=image)
    assert board.outcome == "ack" and board.data == image
    a = analysis(res)
    sizes = a.sizes("down")
    assert max(sizes) == 7 and sum(sizes) == len(a.streams["down"]), a.summary()
    header = a.token("OTA_UPDATE").end  # the control burst and the data burst are cut apart
    assert len(sizes) == -(-header // 7) + -(-(len(a.streams["down"]) - header) // 7)


def test_random_segmentation_is_reproducible_on_the_wire(tmp_path: Path) -> None:
    sizes = []
    for run in range(2):
        board, res = serve(tmp_path / str(run), "random:seed=7,max=700")
        assert board.outcome == "ack"
        sizes.append(analysis(res).sizes("down"))
    assert sizes[0] == sizes[1] and max(sizes[0]) <= 700 and len(set(sizes[0])) > 3


def test_pause_spaces_the_segments(tmp_path: Path) -> None:
    board, res = serve(tmp_path, "per-message:chunk=4000+pause:ms=30")
    assert board.outcome == "ack" and res.policy == "per-message:chunk=4000+pause:ms=30"
    segs = analysis(res).payload_segments("down")
    gaps = [b.time - a.time for a, b in itertools.pairwise(segs)]
    assert len(segs) == 7 and min(gaps) >= 0.025, gaps  # a lower bound: sleep never shortens


@pytest.mark.parametrize("byte", [0, 4096, 11999])
def test_drop_at_closes_after_exactly_n_image_bytes(tmp_path: Path, byte: int) -> None:
    board, res = serve(tmp_path, f"per-message+drop-at:byte={byte}")
    assert board.outcome == "nack:short" and board.data == IMAGE[:byte]
    assert res.outcome == "aborted" and res.nack_reason == "short" and res.bytes_sent == byte
    a = analysis(res)
    fin = a.flagged("F", "down")
    assert fin and not a.flagged("R")
    header = a.token("OTA_UPDATE").end
    assert fin[0].offset == header + byte and len(a.streams["down"]) == header + byte


def test_rst_at_resets_after_n_image_bytes(tmp_path: Path) -> None:
    board, res = serve(tmp_path, "rst-at:byte=5000")
    assert board.outcome == "reset" and res.outcome == "aborted" and "RST" in res.reason
    a = analysis(res)
    rst = a.flagged("R", "down")
    assert rst and not a.flagged("F", "down")
    assert len(a.streams["down"]) == a.token("OTA_UPDATE").end + 5000


def test_stall_without_resume_lets_the_board_time_out(tmp_path: Path) -> None:
    board, res = serve(tmp_path, "stall:after=2048", board_timeout=0.5)
    assert board.outcome == "nack:timeout" and len(board.data) == 2048
    assert res.outcome == "nack" and res.nack_reason == "timeout" and res.bytes_sent == 2048


def test_stall_with_resume_completes(tmp_path: Path) -> None:
    board, res = serve(tmp_path, "stall:after=2048,ms=300", board_timeout=2.0)
    assert board.outcome == "ack" and res.outcome == "ack"
    assert any("resuming" in e.text for e in res.transcript.events)


def test_stall_against_a_silent_board_times_out_on_the_server(tmp_path: Path) -> None:
    _board, res = serve(tmp_path, "stall:after=100,wait=0.5", board_timeout=5.0, capture=False)
    assert res.outcome == "timeout" and "during a 0.5 s stall after 100 data bytes" in res.reason


def test_corrupt_flips_exactly_the_chosen_bytes(tmp_path: Path) -> None:
    board, res = serve(tmp_path, "corrupt:offsets=100,2000", capture=False)
    assert board.outcome == "nack:crc" and res.nack_reason == "crc"
    diff = [i for i, (x, y) in enumerate(zip(board.data, IMAGE, strict=False)) if x != y]
    assert diff == [100, 2000]


@pytest.mark.parametrize(
    "spec,board_out",
    [
        ("wrong-size:delta=-10", "nack:protocol"),  # OTA_DONE expected where data continues
        ("wrong-size:delta=10", "nack:timeout"),  # OTA_DONE eaten as data, then silence
        ("wrong-size:size=0", "nack:bad_size"),
        ("truncate:bytes=1000", "nack:timeout"),
        ("wrong-crc", "nack:crc"),
    ],
)
def test_content_faults_are_refused_by_a_correct_board(tmp_path: Path, spec: str, board_out: str) -> None:
    board, res = serve(tmp_path, spec, capture=False, board_timeout=0.5)
    assert board.outcome == board_out
    assert res.outcome == "nack" and res.nack_reason == board_out.split(":")[1]
    assert res.policy == spec


def test_wrong_size_is_what_the_board_saw(tmp_path: Path) -> None:
    board, _ = serve(tmp_path, "wrong-size:delta=-10", capture=False, board_timeout=0.5)
    assert board.size == len(IMAGE) - 10


def test_slow_reader_still_gets_everything(tmp_path: Path) -> None:
    board, res = serve(
        tmp_path,
        "natural",
        capture=False,
        read_delay=0.002,
        recv_size=512,
        board_timeout=3.0,
        image=os.urandom(40000),
    )
    assert board.outcome == "ack" and res.outcome == "ack"


def test_find_tokens_never_looks_inside_data() -> None:
    stream = b"FILE_SIZE:20\nOTA_UPDATE\n" + b"OTA_DONE\nOTA_DONE\nxx" + b"OTA_DONE\n"
    toks = find_tokens(stream, "down")
    assert [t.text for t in toks] == ["FILE_SIZE:20", "OTA_UPDATE", "OTA_DONE"]
    assert toks[-1].start == len(stream) - 9


def test_retransmissions_and_duplicates_in_a_crafted_pcap(tmp_path: Path) -> None:
    from scapy.all import IP, TCP, Ether, Raw, wrpcap

    def pkt(t: float, seq: int, payload: bytes, ident: int, flags: str = "PA") -> object:
        p = (
            Ether()
            / IP(src="127.0.0.1", dst="127.0.0.1", id=ident)
            / TCP(sport=5000, dport=40000, seq=seq, flags=flags)
            / Raw(payload)
        )
        p.time = t
        return p

    syn = (
        Ether()
        / IP(src="127.0.0.1", dst="127.0.0.1", id=1)
        / TCP(sport=5000, dport=40000, seq=999, flags="SA")
    )
    syn.time = 0.0
    pkts = [
        syn,
        syn,
        pkt(0.1, 1000, b"FILE_SIZE:4\n", 2),
        pkt(0.1001, 1000, b"FILE_SIZE:4\n", 2),
        pkt(0.2, 1012, b"OTA_UPDATE\n", 3),
        pkt(0.5, 1012, b"OTA_UPDATE\n", 4),
        pkt(0.6, 1023, b"abcdOTA_DONE\n", 5),
    ]
    path = tmp_path / "crafted.pcap"
    wrpcap(str(path), pkts)
    a = analyze_pcap(path, 5000)
    assert a.duplicates_removed == 2 and a.retransmissions == 1
    assert a.sizes("down") == [12, 11, 13]
    assert a.streams["down"] == b"FILE_SIZE:4\nOTA_UPDATE\nabcdOTA_DONE\n"
    assert a.token_alone("OTA_UPDATE") and a.token_glued("OTA_DONE")
    assert "1 retransmissions" in a.summary() and a.to_dict()["retransmissions"] == 1


def test_capture_without_rights_raises_capture_unavailable_and_the_server_still_serves(
    tmp_path: Path,
) -> None:
    code = (
        "import os, socket\n"
        "from rig.capture import check_capture, CaptureUnavailable\n"
        "from rig.ota import OtaServer\n"
        "try:\n    check_capture('lo')\nexcept CaptureUnavailable as e:\n    print('UNAVAILABLE', e)\n"
        f"srv = OtaServer(b'x' * 10, capture={str(tmp_path)!r}).start()\n"
        "print('SERVER', srv.capture_error is not None)\n"
        "srv.close()\n"
    )
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges for the check")
    proc = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert proc.returncode == 0, proc.stderr
    assert "UNAVAILABLE capturing on 'lo' needs root or CAP_NET_RAW" in proc.stdout
    assert "setcap" in proc.stdout and "SERVER True" in proc.stdout
