"""gridrun's storage against a real S3 API (moto's server on 127.0.0.1, through Arrow's own
S3 client): locations, the claim race, an endpoint that goes away and comes back, and a
bucket that does not exist or refuses writes. No Ray."""

import json
import subprocess
import sys
import textwrap
import time

import pytest

from gridrun.store import journal, spool
from gridrun.store.location import Location

from test_claims import race  # tests/store, put on sys.path by conftest.py


@pytest.fixture
def on_s3(s3, s3env, monkeypatch):
    """This process talks to ``s3`` through the proxy, as a gridrun process would."""
    for k, v in s3env.items():
        if k.startswith(("AWS_", "GRIDRUN_")):
            monkeypatch.setenv(k, v)
    return s3


def keys(s3, prefix) -> list[str]:
    import pyarrow.fs as pafs

    infos = s3.fs().get_file_info(pafs.FileSelector(f"{s3.bucket}/{prefix}", recursive=True,
                                                    allow_not_found=True))
    return sorted(i.path.split("/", 2)[2] for i in infos if i.type == pafs.FileType.File)


def test_locations_on_s3_write_list_read_and_keep_a_uris_query(on_s3, prefix):
    run = Location(on_s3.uri(prefix, "run"))
    f = run.child("parts", "a.json")
    f.write_text('{"v": 1}')
    f.write_text('{"v": 2}')
    assert json.loads(f.read_text()) == {"v": 2} and run.child("parts").list() == ["a.json"]
    big = bytes(range(256)) * 40_000  # 10 MB: a multipart upload
    run.child("checkpoints", "t.pt").write_bytes(big)
    assert run.child("checkpoints", "t.pt").read_bytes() == big
    # the endpoint in the URI itself, no AWS_ENDPOINT_URL: children keep the query
    on_s3_direct = f"?endpoint_override=127.0.0.1:{on_s3.port}&scheme=http"
    q = Location(on_s3.uri(prefix, "run") + on_s3_direct)
    child = q.child("parts", "a.json")
    assert child.text.endswith("/run/parts/a.json" + on_s3_direct)
    assert json.loads(Location(child.text).read_text()) == {"v": 2}
    run.delete()
    assert keys(on_s3, prefix) == []


@pytest.mark.slow
def test_drivers_racing_for_a_fresh_run_on_s3_let_exactly_one_through(s3, s3env, prefix):
    """S3 has no atomic rename and no exclusive create: the claim protocol rests on its
    read-after-write consistency alone."""
    done = race(s3.uri(prefix, "r"), 5, env=s3env)
    won = [p for p in done if p.returncode == 0]
    assert len(won) == 1, [p.stdout + p.stderr for p in done]
    assert all("is being run by another driver" in p.stdout for p in done
               if p not in won), [p.stdout + p.stderr for p in done]
    assert keys(s3, prefix) == []  # every claim released or withdrawn


@pytest.mark.slow
def test_a_part_is_kept_while_the_endpoint_is_away_and_uploaded_when_it_is_back(on_s3,
                                                                                prefix):
    run = Location(on_s3.uri(prefix, "run"))
    run.child("launch.json").write_text("{}")
    on_s3.proxy.cut()  # connections closed, new ones refused: the endpoint is gone
    t0 = time.monotonic()
    assert spool.put(run, journal.part_file(run, "cell"), b'{"cell": 1}') == "kept"
    print(f"\nMEASURE outage: a refused part was kept locally after "
          f"{time.monotonic() - t0:.1f} s of retries")
    assert spool.pending(run) == 1
    on_s3.proxy.restore()
    assert spool.flush(run) == 1 and spool.pending(run) == 0
    assert json.loads(journal.part_file(run, "cell").read_text()) == {"cell": 1}
    assert spool.stats(run) == {"retried": 0, "kept": 1, "uploaded_late": 1, "waiting": 0}
    run.delete()


SPEC = textwrap.dedent("""
    from gridrun import Ablation, Factor
    ablation = Ablation(name="q", dataset="digits", factors=[Factor("batchnorm", [False, True])],
                        fixed={"epochs": 1}, train_size=200, resources={"cpu": 1})
""")


# gridrun with Ray made unimportable: reaching Ray would fail otherwise than with one line
NO_RAY = "import sys; sys.modules['ray'] = None; from gridrun.cli import main; main()"


@pytest.mark.parametrize("case", ["no such bucket", "wrong credentials", "read-only key"])
def test_a_bucket_that_cannot_be_written_is_one_line_before_ray_starts(s3, s3env, prefix,
                                                                       tmp_path, case):
    spec = tmp_path / "q.py"
    spec.write_text(SPEC)
    storage = s3.uri(prefix) if case != "no such bucket" else f"s3://no-such-bucket/{prefix}"
    env = {"no such bucket": s3env,
           "wrong credentials": {**s3env, **s3.env(("AKIAWRONG0000000000", "wrong"))},
           "read-only key": {**s3env, **s3.env(s3.reader)}}[case]
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", NO_RAY, "launch", str(spec),
                          "--storage", storage], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env=env)
    seconds = time.monotonic() - t0
    assert out.returncode == 2, out.stderr[-3000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {storage}/q: cannot "), lines
    expected = {"no such bucket": "The specified bucket does not exist (NO_SUCH_BUCKET)",
                "wrong credentials": "(INVALID_ACCESS_KEY_ID)",
                "read-only key": "Access Denied (ACCESS_DENIED)"}
    assert expected[case] in lines[0]
    assert out.stdout == ""
    assert keys(s3, prefix) == []  # nothing written
    print(f"\nMEASURE bad bucket ({case}): exit 2 after {seconds:.1f} s: {lines[0]}")
