"""Build configuration: one YAML file per build, validated by pydantic. Secrets come from the environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.errors import UserError
from schemas.taxonomy import TAXONOMY


class ConfigError(UserError, ValueError):
    """A config file that cannot be read or does not validate; the message names the file and the settings."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(_Model):
    """Where source videos come from, besides keyword search."""

    kind: Literal["url_list", "local"]
    path: str  # a text/CSV file of URLs (url[,scene]) or a folder of videos (scene from sub-folder names)
    scene: str | None = None  # for all of them, when the file or folder does not say


class AcquireConfig(_Model):
    search: bool = True  # search scene keywords with yt-dlp
    search_prefix: str = "ytsearch"
    results_per_keyword: int = Field(5, ge=1)
    min_duration_s: float = Field(10.0, ge=0)
    max_duration_s: float = Field(1800.0, gt=0)
    max_height: int = Field(720, ge=144)
    format: str = "bv*[vcodec^=avc1][height<={h}][ext=mp4]+ba[ext=m4a]/b[vcodec^=avc1][height<={h}][ext=mp4]/b[height<={h}]/b"
    retries: int = Field(3, ge=0)
    rate_limit_bytes: int | None = None  # bytes/s per download
    sleep_between_s: float = Field(0.0, ge=0)
    socket_timeout_s: float = Field(20.0, gt=0)
    source_timeout_s: float = Field(600.0, gt=0)
    max_file_mb: int = Field(2048, ge=1)  # larger downloads are refused (yt-dlp max_filesize)
    # bounds every fetched video is checked against (a frame rate of 0.001 would make one-frame "clips")
    min_fps: float = Field(5.0, gt=0)
    max_fps: float = Field(240.0, gt=0)
    max_pixels: int = Field(3840 * 2160, ge=1024)  # width x height
    # the header's duration and frame count / frame rate may differ by this share (or 2 s), not more
    duration_tolerance: float = Field(0.25, ge=0, le=1)

    @model_validator(mode="after")
    def _durations(self) -> "AcquireConfig":
        if self.min_duration_s >= self.max_duration_s:
            raise ValueError("acquire.min_duration_s must be below acquire.max_duration_s")
        if self.min_fps >= self.max_fps:
            raise ValueError("acquire.min_fps must be below acquire.max_fps")
        return self


class ShotsConfig(_Model):
    detector: Literal["adaptive", "content"] = "adaptive"
    min_scene_len_s: float = Field(0.3, ge=0)  # below select.min_duration_s, so short shots are cut, then dropped
    adaptive_threshold: float = 3.0
    content_threshold: float = 27.0
    downscale_width: int = Field(256, ge=32)  # frames are shrunk once to this width for shot scoring


class FacesConfig(_Model):
    # auto: scrfd where its model (scrfd_model) is in the models directory, the production default; else
    # centerface, the CPU/offline default (see pipeline.faces.resolve_faces)
    backend: Literal["auto", "centerface", "scrfd"] = "auto"
    models_dir: str | None = None  # default: $FERV_MODELS_DIR, else ~/.cache/ferv/models
    scrfd_model: str = "buffalo_l"  # an insightface pack name in models_dir, or a path to det_*.onnx
    # detection input sizes (long side); unset: [640, 128] for scrfd (the small one catches close-ups that
    # fill the frame), [320] for centerface (one pass finds close-ups and faces down to select.min_face_px)
    det_sizes: list[int] | None = None
    score_threshold: float = Field(0.5, ge=0, le=1)
    nms_threshold: float = Field(0.4, ge=0, le=1)
    stride: int = Field(8, ge=1)  # detect every Nth frame; tracks interpolate the frames between
    batch_size: int = Field(8, ge=1)  # frames per inference call where the backend batches (GPU)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(0, ge=0)  # onnxruntime intra-op threads per detector; 0 = its default (all cores)
    # auto: int8 for centerface on the CPU (about 1.4x faster, same faces; see pipeline.faces.quantize),
    # else fp32; int8 is built for centerface only
    precision: Literal["auto", "fp32", "int8"] = "auto"

    @field_validator("det_sizes")
    @classmethod
    def _det_sizes(cls, sizes: list[int] | None) -> list[int] | None:
        if sizes is not None and (not sizes or any(s < 32 for s in sizes)):
            raise ValueError("faces.det_sizes needs at least one size, each >= 32 pixels")
        return sizes

    @model_validator(mode="after")
    def _default_sizes(self) -> "FacesConfig":
        if self.det_sizes is None and self.backend != "auto":
            self.det_sizes = [640, 128] if self.backend == "scrfd" else [320]
        return self


class TracksConfig(_Model):
    iou_threshold: float = Field(0.3, ge=0, le=1)
    max_gap_frames: int = Field(6, ge=0)  # a track ends when no detection extends it for longer than this
    # plus faces.stride frames
    min_track_frames: int = Field(8, ge=1)
    smoothing_window: int = Field(5, ge=1)


class SelectConfig(_Model):
    min_duration_s: float = Field(0.5, gt=0)
    max_duration_s: float = Field(2.0, gt=0)
    max_clips_per_track: int = Field(3, ge=1)
    min_face_px: int = Field(48, ge=1)
    min_det_score: float = Field(0.6, ge=0, le=1)
    min_detected_fraction: float = Field(0.5, ge=0, le=1)
    min_blur: float = Field(20.0, ge=0)

    @model_validator(mode="after")
    def _durations(self) -> "SelectConfig":
        if self.min_duration_s > self.max_duration_s:
            raise ValueError("select.min_duration_s must not exceed select.max_duration_s")
        return self


class ExpressionConfig(_Model):
    """Facial-expression scores (pipeline.expression): where candidates are placed, push order, review hints."""

    # auto: on when the model is in the models directory (`ferv models fetch expression`), else off
    enabled: Literal["auto", "on", "off"] = "auto"
    threads: int = Field(1, ge=1)  # onnxruntime threads of the scorer (a face is ~0.3 ms on one)
    # push order of the crowd copies: plan = the trusted-labelling plan's order; expression = clips predicted
    # as rarer, stronger expressions first (annotation.priority)
    push_order: Literal["plan", "expression"] = "plan"
    quota: dict[str, int] = Field(default_factory=dict)  # expression -> clips pushed first (push_order expression)
    # task kinds that carry the model's scores as Label Studio predictions (never the crowd copies)
    predictions_on: list[Literal["review", "gold"]] = ["review", "gold"]
    report_baseline: bool = True  # the release report shows the model's zero-training WAR/UAR (when fetched)

    @field_validator("quota")
    @classmethod
    def _known_expressions(cls, quota: dict[str, int]) -> dict[str, int]:
        unknown = [e for e in quota if e not in TAXONOMY.expression_names]
        if unknown or any(n < 0 for n in quota.values()):
            raise ValueError(f"expression.quota: names from {TAXONOMY.expression_names} with counts >= 0 "
                             f"(unknown: {unknown})")
        return quota


class ExportConfig(_Model):
    crop_size: int = Field(224, ge=32, multiple_of=2)  # even: crops are I420
    crop_margin: float = Field(0.4, ge=0)  # extra border around the face box, as a share of its side
    # x264 constant quantiser (lower is better; 20 keeps faces crisp); constant QP rather than CRF: CRF's
    # look-ahead analysis costs about 15% of the encoding with ultrafast
    qp: int = Field(20, ge=0, le=51)
    preset: str = "ultrafast"  # x264 preset: encoding is most of the clips stage's time; qp keeps the quality
    scene_max_height: int = Field(360, ge=120)  # scene clips (for annotators) are shrunk to this height
    jpeg_quality: int = Field(95, ge=1, le=100)


class ClipsConfig(_Model):
    workers: int = Field(0, ge=0)  # worker processes over sources; 0 = one per core, 1 = in-process
    # decoded frames (with their first halving) kept per worker for export, in memory shared with its exporters;
    # when full, decoding waits for pending clips, and only a shot longer than this has its early clips
    # re-decoded by seeking
    buffer_mb: int = Field(512, ge=16)
    # processes per worker cutting closed shots' clips while decoding goes on (processes, not threads: they do
    # not wait on the decoding process's interpreter lock)
    exporters: int = Field(2, ge=1)
    # decoder threads per source (0: FFmpeg's choice); the stage's own threads already fill the cores, and
    # frame threading only adds contention
    decode_threads: int = Field(1, ge=0)


class LabelStudioConfig(_Model):
    url: str = "http://127.0.0.1:8080"
    token_env: str = "FERV_LS_TOKEN"  # the API token is read from this environment variable
    project_title: str = "ferv"
    data_dir: str | None = None  # local server data; default WORKDIR/labelstudio
    # Label Studio's local-files document root, holding only links to clip folders (annotation/media.py);
    # default WORKDIR/media. Keep the data directory, secrets and manifests outside it.
    media_root: str | None = None
    storage: Literal["local", "s3"] = "local"
    s3_bucket: str | None = None
    s3_prefix: str | None = None
    s3_endpoint: str | None = None
    batch_size: int = Field(1000, ge=1)
    retries: int = Field(4, ge=0)
    timeout_s: float = Field(60.0, gt=0)

    def token(self) -> str | None:
        return os.environ.get(self.token_env)


class AnnotationConfig(_Model):
    annotators_per_clip: int = Field(3, ge=1)
    group_size: int = Field(100, ge=1)
    gold_fraction: float = Field(0.05, ge=0, lt=1)
    accept_gold_rate: float = Field(0.8, ge=0, le=1)
    improper_gold_rate: float = Field(0.4, ge=0, le=1)
    expert_review: bool = True
    flag_gold_accuracy_below: float = Field(0.6, ge=0, le=1)
    seed: int = 0
    min_gold_per_group: int = Field(1, ge=0)  # every group gets at least this many gold clips to judge by
    # a clip whose counted crowd votes have no clear winner (aggregate.min_agreement) gets one more annotator
    # at a time, up to this many crowd annotators in all
    max_annotators_per_clip: int = Field(5, ge=1)

    @model_validator(mode="after")
    def _gold_rates(self) -> "AnnotationConfig":
        if self.improper_gold_rate > self.accept_gold_rate:
            raise ValueError("annotation.improper_gold_rate must not exceed annotation.accept_gold_rate")
        if self.max_annotators_per_clip < self.annotators_per_clip:
            raise ValueError("annotation.max_annotators_per_clip must be at least annotation.annotators_per_clip")
        return self


class AggregateConfig(_Model):
    method: Literal["majority", "dawid_skene"] = "majority"
    # share of votes the winning label needs (majority); below it (or a tie) the clip is ambiguous and the
    # annotation cycle gives it one more annotator
    min_agreement: float = Field(0.5, ge=0, le=1)
    min_votes: int = Field(2, ge=1)
    seed_with_gold: bool = True  # Dawid-Skene: fix gold clips to their gold label while estimating annotators
    min_posterior: float = Field(0.5, ge=0, le=1)  # Dawid-Skene: posterior probability the winning label needs
    max_iter: int = Field(100, ge=1)  # Dawid-Skene: EM iterations at most (stops earlier on convergence)
    trusted_copies: bool = True  # count only crowd copies judged Accept/Improper by their gold rate


class ReleaseConfig(_Model):
    test_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 0
    name: str = "ferv-build"
    statuses: list[Literal["accepted", "gold"]] = ["accepted", "gold"]  # label statuses that are released
    link_files: bool = False  # hard-link frames and clips from the work directory when on one filesystem
    scene_frames: bool = True  # ship 3_ClipsforScenImages (the scene frames)
    clips: bool = True  # ship 1_Clips (the face-crop and scene MP4s)


class RunnerConfig(_Model):
    kind: Literal["threads", "dask"] = "threads"
    max_workers: int = Field(4, ge=1)
    dask_address: str | None = None  # an existing cluster (its workers need PREFECT_API_URL); none = a LocalCluster
    dask_workers: int = Field(2, ge=1)
    download_concurrency: int = Field(4, ge=1)  # downloads at once, over all machines
    # GPU slots per worker machine (sources whose faces are detected at once on one machine's GPUs); none =
    # one per GPU the machine shows, no slot where face detection runs on the CPU
    gpu_concurrency: int | None = Field(None, ge=1)


class BuildConfig(_Model):
    """The whole build: which scenes, where sources come from, and every stage's parameters."""

    name: str = "ferv"
    workdir: str = "work"
    scenes: list[str] = Field(default_factory=lambda: list(TAXONOMY.scene_names))
    keywords: dict[str, list[str]] = Field(default_factory=dict)  # per-scene overrides of the taxonomy's
    sources: list[SourceSpec] = Field(default_factory=list)
    acquire: AcquireConfig = AcquireConfig()
    shots: ShotsConfig = ShotsConfig()
    faces: FacesConfig = FacesConfig()
    tracks: TracksConfig = TracksConfig()
    select: SelectConfig = SelectConfig()
    export: ExportConfig = ExportConfig()
    expression: ExpressionConfig = ExpressionConfig()
    clips: ClipsConfig = ClipsConfig()
    labelstudio: LabelStudioConfig = LabelStudioConfig()
    annotation: AnnotationConfig = AnnotationConfig()
    aggregate: AggregateConfig = AggregateConfig()
    release: ReleaseConfig = ReleaseConfig()
    runner: RunnerConfig = RunnerConfig()

    @field_validator("scenes")
    @classmethod
    def _known_scenes(cls, scenes: list[str]) -> list[str]:
        unknown = [s for s in scenes if s not in TAXONOMY.scene_names]
        if unknown:
            raise ValueError(f"unknown scenes {unknown}; expected names from {TAXONOMY.scene_names}")
        return scenes

    @field_validator("keywords")
    @classmethod
    def _known_keyword_scenes(cls, keywords: dict[str, list[str]]) -> dict[str, list[str]]:
        cls._known_scenes(list(keywords))
        return keywords

    def scene_keywords(self, scene: str) -> list[str]:
        """Search keywords for a scene: the config's override, else the taxonomy's defaults."""
        return list(self.keywords.get(scene, TAXONOMY.scene(scene).keywords))


# Settings a deployment gives through the environment (the team stack's worker): they win over the YAML file.
ENV_SETTINGS = {"FERV_WORKDIR": ("workdir",), "FERV_LS_URL": ("labelstudio", "url"),
                "FERV_LS_MEDIA_ROOT": ("labelstudio", "media_root")}


def _problems(exc: ValidationError) -> str:
    """Pydantic's errors in one line: ``section.key: what is wrong`` each."""
    out = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        what = "unknown setting" if error["type"] == "extra_forbidden" else error["msg"]
        got = "" if error["type"] == "extra_forbidden" else f" (got {error.get('input')!r:.60})"
        out.append(f"{where}: {what}{got}")
    return "; ".join(out)


def load_config(path: str | Path | None = None, **overrides) -> BuildConfig:
    """Read a YAML build config (or the defaults), apply ``ENV_SETTINGS`` found in the environment, then
    top-level ``overrides``; a file that cannot be read, is not YAML, is not a mapping or does not validate
    raises :class:`ConfigError` in one line."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist; pass a path like configs/demo.yaml") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} cannot be read ({type(exc).__name__}); pass a YAML text file "
                              "like configs/demo.yaml") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"config {path}: YAML syntax error{where}: {problem}; fix it (configs/demo.yaml "
                              "shows the layout)") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"config {path}: the file holds a {type(data).__name__}, not a mapping of settings; "
                              "write `section:` keys at the top level as in configs/demo.yaml")
    for name, (*section, key) in ENV_SETTINGS.items():
        if os.environ.get(name):
            (data.setdefault(section[0], {}) if section else data)[key] = os.environ[name]
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return BuildConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"config {path or '(defaults)'}: {_problems(exc)}; see schemas/config.py for each "
                          "setting's meaning and range") from None
