"""``i3d explain``: where in space and time the network found the evidence for a class.

Grad-CAM (:func:`gradcam_map`) on the float32 Keras network or occlusion (:func:`occlusion_map`) on the
recognizer's engine, upsampled to the crop (:func:`upsample`); :func:`explain` does it window by window
and returns an :class:`Explanation`, which :func:`write_explanation` writes as a video, a contact
sheet, the maps and a JSON summary.
"""

from i3d.tasks.explain.gradcam import GradCAM, SharedNetworks, cam_from_gradients, gradcam_map
from i3d.tasks.explain.occlusion import occlusion_map, occlusion_maps
from i3d.tasks.explain.options import ExplainOptions
from i3d.tasks.explain.regions import upsample
from i3d.tasks.explain.outputs import write_explanation
from i3d.tasks.explain.run import ClassMap, Explanation, WindowExplanation, explain

__all__ = ["ClassMap", "ExplainOptions", "Explanation", "GradCAM", "SharedNetworks", "WindowExplanation",
           "cam_from_gradients",
           "explain", "gradcam_map", "occlusion_map", "occlusion_maps", "upsample",
           "write_explanation"]
