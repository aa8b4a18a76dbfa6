"""``ferv predict RELEASE -o predictions.csv``: the expression model's zero-training baseline on a release."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.console import console


def register(app: typer.Typer) -> None:
    """Add ``ferv predict`` to the top-level app."""

    @app.command("predict")
    def predict(
        release: Path = typer.Argument(..., help="A release folder built by `ferv release`."),
        out: Path = typer.Option(Path("predictions.csv"), "--out", "-o", help="Predictions CSV to write."),
        config: Path | None = typer.Option(None, "--config", "-c", help="Build config YAML (models directory, "
                                           "export.crop_margin; default: built-in)."),
        models_dir: Path | None = typer.Option(None, "--models-dir", help="Models directory (default: the "
                                               "config's faces.models_dir, $FERV_MODELS_DIR, ~/.cache/ferv/models)."),
        stride: int = typer.Option(1, "--stride", min=1, help="Score every Nth frame of each clip."),
    ) -> None:
        """Run the expression model (`ferv models fetch expression`) over the release's test face-crop frames
        (a clip's prediction: the mean over its frames) and write the file `ferv evaluate` reads. A baseline
        from posed FER2013-style faces, no training on the release: a floor to beat, not a peer."""
        from pipeline.evaluate import EvaluationError
        from pipeline.expression.predict import predict_release
        from pipeline.faces import models_dir as default_models_dir
        from pipeline.models import ModelError
        from schemas.config import load_config

        try:
            cfg = load_config(config)
            folder = models_dir or default_models_dir(cfg.faces)
            table = predict_release(release, folder, cfg.export.crop_margin, stride, cfg.expression.threads)
        except (ModelError, EvaluationError, FileNotFoundError, ValueError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
        counts = ", ".join(f"{k} {v}" for k, v in table["prediction"].value_counts().items())
        console.print(f"{len(table)} test clips predicted -> {out} ({counts}); "
                      f"score it with `ferv evaluate {release} {out}`")
