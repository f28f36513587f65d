"""Fixtures of the checkpoint-safety tests: one payload checkpoint (a local
file and the same file over HTTP), a genuine Runner checkpoint of the demo
config, and the demo model's state dict."""
import functools
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Iterator

import pytest
import torch

# --import-mode=importlib puts no test folder on sys.path; the tests here
# import checkpoint_helpers too.
sys.path.insert(0, str(Path(__file__).parent))
from checkpoint_helpers import (DEMO_CFG, Payload, PayloadFiles,  # noqa: E402
                                build_demo_model)
from helpers import load_tool  # noqa: E402


@pytest.fixture(scope='session')
def demo_state() -> Dict[str, torch.Tensor]:
    """State dict of the demo SelfPatch model (random weights)."""
    torch.manual_seed(0)
    return build_demo_model().state_dict()


class _QuietHandler(SimpleHTTPRequestHandler):

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope='session')
def http_root(tmp_path_factory) -> Iterator[tuple]:
    """A folder served on 127.0.0.1 (a free port) for the whole session;
    yields ``(folder, base_url)`` and stops the server at the end."""
    root = tmp_path_factory.mktemp('served')
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope='session')
def payload(tmp_path_factory, http_root, demo_state) -> PayloadFiles:
    """A checkpoint that looks genuine (the demo model's weights, a meta)
    but carries a payload, as a local file and over HTTP."""
    marker = tmp_path_factory.mktemp('marker') / 'PAYLOAD_RAN'
    ckpt = {'state_dict': demo_state, 'meta': {'epoch': 1},
            'message_hub': Payload(marker)}
    root, base_url = http_root
    path = root / 'payload.pth'
    torch.save(ckpt, path)
    return PayloadFiles(str(path), f'{base_url}/payload.pth', marker)


@pytest.fixture(autouse=True)
def torch_home(tmp_path, monkeypatch) -> Path:
    """Downloads go to a fresh cache per test, never to ~/.cache; the
    unsafe opt-in is off, and restored after tests that set it (through
    ``--allow-unsafe-pickle`` too), as is the ``LOCAL_RANK`` that an
    in-process ``tools/train.py``/``test.py`` exports."""
    home = tmp_path / 'torch_home'
    monkeypatch.setenv('TORCH_HOME', str(home))
    monkeypatch.setenv('SELFPATCH_ALLOW_UNSAFE_PICKLE', '')
    monkeypatch.setenv('LOCAL_RANK', '0')  # records its state for teardown
    monkeypatch.delenv('LOCAL_RANK')
    return home


@pytest.fixture(scope='session')
def runner_ckpt(tmp_path_factory) -> str:
    """A genuine Runner checkpoint: one demo epoch through
    ``tools/train.py`` (8 of its images: one iteration), with its message
    hub, optimizer and schedulers."""
    work_dir = tmp_path_factory.mktemp('demo_run')
    train = load_tool('tools/train.py')
    with pytest.MonkeyPatch.context() as mp:
        # parse_args exports LOCAL_RANK: keep it to this run
        mp.setenv('LOCAL_RANK', '0')
        mp.delenv('LOCAL_RANK')
        train.main([
            DEMO_CFG, '--work-dir', str(work_dir), '--cfg-options',
            'train_cfg.max_epochs=1', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'train_dataloader.prefetch_factor=None',
            'train_dataloader.dataset.indices=8',
            'default_hooks.logger.interval=100'
        ])
    path = work_dir / 'epoch_1.pth'
    assert path.is_file()
    return str(path)
