"""Turning an uploaded audio file into checked mono 16 kHz samples, before any model hears it, in bounded memory.

PyAV (FFmpeg) decodes any common format (WAV, FLAC, MP3, Ogg/Opus, Ogg/Vorbis, WebM, M4A/AAC...), and
its resampler turns each frame into mono float32 at 16 kHz as it comes. Channels FFmpeg has no downmix
for (9 or 32 channels without positions, say) are mixed here first, in equal parts. Each limit has its
own 4xx, checked as early as it can be:

1. encoded size (413, ``max_audio_bytes``), before anything is parsed;
2. the container's header: not audio at all, or no audio stream (400), a codec FFmpeg cannot decode, a
   sample rate or channel count outside what maas decodes (400), a declared duration above
   ``max_audio_seconds`` (413), and declared samples to decode (channels x rate x seconds: FFmpeg's
   work) above ``max_audio_samples`` (413: 30 minutes of 8 channels at 384 kHz cost 42 CPU-s to
   decode); then the caller's ``admit`` reserves memory for the declared duration (api/memory.py);
3. while decoding, the samples are counted: decoding stops at ``max_audio_seconds`` or at
   ``max_audio_samples`` decoded (413), so a small file that decodes to hours (a header that lies,
   or none) never holds more than that limit in memory (64 kB per second of 16 kHz float32), nor
   costs more than that much decoding;
4. a file that ends before its header says (a WAV whose data chunk is cut, an MP4 whose samples are
   missing) is truncated (400). A streaming format cut between pages (Ogg, MP3 without a header) is a
   shorter valid file: it is transcribed as far as it goes;
5. a sample that is not a number (NaN or infinity, which a float WAV can hold) is a 400.

Nothing here logs or keeps the audio: the bytes and samples live only as long as the request.
PyAV is imported inside the functions: importing the wire layer must not load FFmpeg.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import APIError
from ..models.speech_io import SAMPLE_RATE

if TYPE_CHECKING:
    import numpy as np

MIN_SAMPLE_RATE = 4_000  # below this there is no speech left to hear
MAX_SAMPLE_RATE = 384_000  # the highest rate audio interfaces record at
MAX_CHANNELS = 32
TRUNCATION_SLACK_S = 0.5  # decoded audio may fall this much short of the declared length (encoder padding)


@dataclass(frozen=True)
class AudioLimits:
    """ServerConfig's max_audio_bytes, max_audio_seconds and max_audio_samples."""

    max_bytes: int
    max_seconds: float
    max_samples: int = 500_000_000


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # float32, mono, SAMPLE_RATE

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def decode_audio(data: bytes, limits: AudioLimits, param: str = "file",
                 admit: Callable[[float], None] | None = None) -> Audio:
    """The file's audio as mono float32 samples at 16 kHz; a 4xx for anything that is not, or is too much.

    `admit(seconds)` is called once the header has passed, before decoding, with the seconds it
    declares (``max_seconds`` when it declares none): it may refuse (raise) what it cannot afford.
    """
    import av

    if len(data) > limits.max_bytes:
        raise APIError(f"the audio file is {len(data)} bytes, above the limit of {limits.max_bytes} "
                       f"(max_audio_bytes); send a shorter or more compressed file",
                       status=413, param=param, code="audio_too_large")
    if not data:
        raise APIError("the audio file is empty", param=param, code="invalid_audio")
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError):
        raise _not_audio(param) from None
    with container:
        if not container.streams.audio:
            raise _not_audio(param)
        stream = container.streams.audio[0]
        _check_stream(stream, container, limits, param)
        if admit is not None:
            admit(min(container.duration / 1e6, limits.max_seconds) if container.duration else limits.max_seconds)
        samples = _decode(container, stream, limits, param)
        declared = container.duration / 1e6 if container.duration else None
    seconds = len(samples) / SAMPLE_RATE
    if not len(samples):
        raise APIError("the audio file holds no samples (empty or truncated)", param=param, code="invalid_audio")
    if _wav_truncated(data):
        raise APIError("the audio file is truncated: its WAV data chunk ends before the length its header announces",
                       param=param, code="truncated_audio")
    if declared is not None and seconds < declared - max(TRUNCATION_SLACK_S, 0.02 * declared):
        raise APIError(f"the audio file is truncated: it holds {seconds:.1f} s of the {declared:.1f} s its header "
                       f"announces", param=param, code="truncated_audio")
    return Audio(samples)


def _check_stream(stream: Any, container: Any, limits: AudioLimits, param: str) -> None:
    if stream.codec_context is None:  # a codec FFmpeg has no decoder for (a WAV's format tag, or its bit depth)
        raise APIError("the audio is in an encoding maas cannot decode; send WAV (PCM), FLAC, MP3, Ogg (Opus, "
                       "Vorbis), WebM or M4A", param=param, code="unsupported_audio")
    rate, channels = stream.sample_rate or 0, stream.channels or 0
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise APIError(f"the audio's sample rate is {rate} Hz; maas decodes {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz",
                       param=param, code="unsupported_audio")
    if not 1 <= channels <= MAX_CHANNELS:
        raise APIError(f"the audio has {channels} channels; maas decodes 1-{MAX_CHANNELS}", param=param,
                       code="unsupported_audio")
    declared = container.duration / 1e6 if container.duration else 0.0
    if declared > limits.max_seconds:
        raise _too_long(declared, limits, param)
    if declared * rate * channels > limits.max_samples:
        raise _too_many_samples(declared * rate * channels, limits, param)


def _decode(container: Any, stream: Any, limits: AudioLimits, param: str) -> np.ndarray:
    import av
    import numpy as np

    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    limit = int(limits.max_seconds * SAMPLE_RATE)
    parts: list[np.ndarray] = []
    count = 0
    mix: bool | None = None  # whether the channels are mixed here, known from the first frame
    decoded = 0  # input samples, every channel counted: the decoding work so far
    try:
        for frame in container.decode(stream):
            decoded += frame.samples * frame.layout.nb_channels
            if decoded > limits.max_samples:  # a header that lied about its length, or had none
                raise _too_many_samples(decoded, limits, param, at_least=True)
            if mix is None:
                mix = not _ffmpeg_downmixes(frame)
            for out in resampler.resample(_equal_mix(frame) if mix else frame):
                parts.append(out.to_ndarray()[0])
                count += out.samples
            if count > limit:  # stop at once: the rest is never decoded
                raise _too_long(count / SAMPLE_RATE, limits, param, at_least=True)
        parts += [out.to_ndarray()[0] for out in resampler.resample(None)]
    except (av.FFmpegError, ValueError) as exc:
        raise APIError(f"the audio file is corrupt or truncated ({exc})", param=param, code="invalid_audio") from None
    samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if len(samples) > limit:
        raise _too_long(len(samples) / SAMPLE_RATE, limits, param)
    if not np.isfinite(samples).all():  # a float WAV can hold NaN or infinity: no model hears anything in them
        raise APIError("the audio file holds samples that are not numbers (NaN or infinity)", param=param,
                       code="invalid_audio")
    return samples


def _ffmpeg_downmixes(frame: Any) -> bool:
    """Whether FFmpeg's resampler mixes this frame's channels to mono: it does for the layouts it knows (mono,
    stereo, 5.1..., and 1-8, 16 or 24 channels without positions), and refuses others (9 or 32 channels
    without positions, or positions it has no mix for)."""
    import av

    if frame.layout.nb_channels <= 2:
        return True
    try:
        av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE).resample(frame)
    except (av.FFmpegError, ValueError):
        return False
    return True


def _equal_mix(frame: Any) -> Any:
    """The frame as mono float64 samples (full scale 1), each channel in equal part: the mix that assumes
    nothing about where the channels are."""
    import av
    import numpy as np

    channels = frame.layout.nb_channels
    data = frame.to_ndarray()  # planar: (channels, samples); packed: (1, samples * channels), interleaved
    with np.errstate(invalid="ignore"):  # inf and -inf in a float file make NaN, which decoding then refuses
        mixed = (data if frame.format.is_planar else data.reshape(-1, channels).T).mean(axis=0, dtype=np.float64)
    if data.dtype == np.uint8:  # unsigned 8-bit: silence is 128
        mixed = (mixed - 128) / 128
    elif np.issubdtype(data.dtype, np.integer):
        mixed /= 2.0 ** (8 * data.dtype.itemsize - 1)
    mono = av.AudioFrame.from_ndarray(mixed[None, :], format="dbl", layout="mono")
    mono.sample_rate, mono.pts = frame.sample_rate, frame.pts
    if frame.time_base is not None:
        mono.time_base = frame.time_base
    return mono


def _wav_truncated(data: bytes) -> bool:
    """A RIFF/WAVE file whose `data` chunk announces more bytes than the file holds."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return False
    at = 12
    while at + 8 <= len(data):
        name, size = data[at:at + 4], struct.unpack("<I", data[at + 4:at + 8])[0]
        if name == b"data":
            streaming = size in (0, 0xFFFFFFFF)  # written before its length was known
            return not streaming and at + 8 + size > len(data)
        at += 8 + size + (size & 1)
    return False


def _not_audio(param: str) -> APIError:
    return APIError("cannot read the file as audio; send WAV, FLAC, MP3, Ogg (Opus, Vorbis), WebM or M4A",
                    param=param, code="invalid_audio")


def _too_long(seconds: float, limits: AudioLimits, param: str, at_least: bool = False) -> APIError:
    more = "more than " if at_least else ""
    return APIError(f"the audio lasts {more}{seconds:.0f} s, above the limit of {limits.max_seconds:g} s "
                    f"(max_audio_seconds); split it", status=413, param=param, code="audio_too_long")


def _too_many_samples(samples: float, limits: AudioLimits, param: str, at_least: bool = False) -> APIError:
    more = "more than " if at_least else ""
    return APIError(f"the audio holds {more}{samples:.0f} samples to decode (channels x sample rate x seconds), "
                    f"above the limit of {limits.max_samples} (max_audio_samples); send fewer channels, a lower "
                    f"sample rate or a shorter file", status=413, param=param, code="audio_too_large")
