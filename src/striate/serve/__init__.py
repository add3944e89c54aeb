"""An HTTP inference server for a trained image classifier: top-k classes as JSON, concurrent
requests batched into one forward pass, a web page with a Grad-CAM or saliency overlay.

`create_app(model)` gives the FastAPI application; `striate serve` runs it under uvicorn.
"""

from striate.serve.app import Limits, create_app

__all__ = ["Limits", "create_app"]
