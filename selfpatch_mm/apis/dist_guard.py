"""Stop a distributed run when a rank freezes or dies.

Without a bound, a rank whose peer was stopped (SIGSTOP, a hung GPU, a
preempted node) waits in its next collective for ever. The process group is
created with a timeout (:func:`apply_dist_timeout`: ``SELFPATCH_DIST_TIMEOUT``
or ``env_cfg.dist_cfg.timeout``, in seconds, at most 30 minutes by default),
so the collective fails; :func:`stop_on_dist_failure` then names the rank
that stopped responding and ends the process.
"""
import os
import sys
import traceback
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional

__all__ = [
    'DEFAULT_DIST_TIMEOUT', 'DIST_TIMEOUT_ENV', 'apply_dist_timeout',
    'dist_timeout',
    'is_comm_failure', 'stop_on_dist_failure'
]

DEFAULT_DIST_TIMEOUT = 1800  # seconds; torch's own default for gloo
DIST_TIMEOUT_ENV = 'SELFPATCH_DIST_TIMEOUT'

# What gloo's and NCCL's errors say when a peer is gone or silent.
_COMM_MARKS = ('gloo', 'nccl', 'timed out', 'connection closed by peer',
               'connection reset by peer', 'watchdog', 'broken pipe')


def apply_dist_timeout(cfg: Optional[Any] = None) -> float:
    """The collective timeout, written into ``cfg.env_cfg.dist_cfg``.

    mmengine passes ``dist_cfg.timeout`` (seconds) to
    ``init_process_group`` on GPUs; the CPU (gloo) group of
    :func:`selfpatch_mm.apis.init_cpu_dist_if_needed` reads it too.

    Args:
        cfg (mmengine.Config, optional): The config, changed in place.

    Returns:
        float: Seconds: ``$SELFPATCH_DIST_TIMEOUT``, else
        ``cfg.env_cfg.dist_cfg.timeout``, else 1800.

    Raises:
        ValueError: If the value is not a positive number.
    """
    dist_cfg: dict = {}
    if cfg is not None:
        # Config.setdefault stores a converted copy: assign, then read back
        if cfg.get('env_cfg') is None:
            cfg['env_cfg'] = {}
        if cfg['env_cfg'].get('dist_cfg') is None:
            cfg['env_cfg']['dist_cfg'] = {}
        dist_cfg = cfg['env_cfg']['dist_cfg']
    raw = os.environ.get(DIST_TIMEOUT_ENV, dist_cfg.get('timeout'))
    source = DIST_TIMEOUT_ENV if DIST_TIMEOUT_ENV in os.environ else \
        'env_cfg.dist_cfg.timeout'
    if raw is None:
        raw, source = DEFAULT_DIST_TIMEOUT, 'default'
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f'{source} must be a positive number of seconds, '
                         f'got {raw!r}.')
    # mmengine converts the seconds to a timedelta; keep whole numbers ints
    dist_cfg['timeout'] = int(seconds) if seconds.is_integer() else seconds
    return seconds


def dist_timeout(cfg: Optional[Any] = None) -> float:
    """The collective timeout :func:`apply_dist_timeout` resolved into
    ``cfg`` (as :func:`selfpatch_mm.apis.load_config` does), or resolved
    now when ``cfg`` has none (a config built without ``load_config``).

    Args:
        cfg (mmengine.Config, optional): The config.

    Returns:
        float: Seconds.
    """
    timeout = None
    if cfg is not None:
        timeout = ((cfg.get('env_cfg') or {}).get('dist_cfg') or
                   {}).get('timeout')
    return float(timeout) if timeout is not None else \
        apply_dist_timeout(cfg)


def is_comm_failure(error: BaseException) -> bool:
    """Whether ``error`` came from a failed or timed-out collective."""
    import torch.distributed as dist
    dist_errors = tuple(
        getattr(dist, name)
        for name in ('DistError', 'DistBackendError', 'DistNetworkError')
        if hasattr(dist, name))
    if dist_errors and isinstance(error, dist_errors):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(m in text
                                                   for m in _COMM_MARKS)


def _suspects(rank: int, world_size: int) -> List[int]:
    """The ranks that can have stopped: the peer of a 2-process run."""
    if world_size == 2:
        return [1 - rank]
    return []


@contextmanager
def stop_on_dist_failure(timeout: float) -> Iterator[None]:
    """End the process with a clear message when a collective fails.

    Outside a distributed run, or for other errors, exceptions pass
    unchanged. After a failed collective the process group is unusable and
    joining its threads at interpreter exit can hang or abort, so the
    message (and the traceback) is written to stderr and the process exits
    with ``os._exit(1)``; DataLoader workers exit once their parent is gone.

    Args:
        timeout (float): The collective timeout in seconds (for the
            message).
    """
    try:
        yield
    except Exception as error:
        import torch.distributed as dist
        if not (dist.is_available() and dist.is_initialized()) or \
                dist.get_world_size() < 2 or not is_comm_failure(error):
            raise
        rank, world_size = dist.get_rank(), dist.get_world_size()
        suspects = _suspects(rank, world_size)
        who = (f'rank {suspects[0]}' if len(suspects) == 1 else
               'another rank (the ranks whose logs end without this message '
               'are the ones that stopped)')
        first = (str(error).strip().splitlines() or [''])[0][:300]
        msg = (f'[rank {rank}/{world_size}] Stopping: {who} stopped '
               f'responding (frozen or dead). A collective failed or waited '
               f'longer than the {timeout:g} s timeout (set it with '
               f'{DIST_TIMEOUT_ENV} or env_cfg.dist_cfg.timeout): '
               f'{type(error).__name__}: {first}')
        traceback.print_exc()
        print(msg, file=sys.stderr, flush=True)
        try:
            from mmengine.logging import MMLogger
            MMLogger.get_current_instance().error(msg)
        except Exception:  # logging must not keep the process alive
            pass
        sys.stdout.flush()
        os._exit(1)
