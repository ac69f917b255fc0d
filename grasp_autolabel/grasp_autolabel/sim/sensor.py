"""What an RGB-D sensor makes of a noiseless frame: a D4xx-like model and a second kind.

``SensorModel()`` is an Intel RealSense D4xx; ``SensorModel.preset('two-sided')`` a sensor that
blanks depth on *both* sides of an edge (structured light, time of flight, or a D4xx with other
filters): a band of 1-2 px around every depth edge, 25-35 % invalid pixels in all (dark or
grazing surfaces as larger blobs), depth in 0.1 mm units and heavier noise. The D4xx model:

* Depth noise grows with z^2 (stereo: sigma_z = z^2 * sigma_d / (f * B)), part white, part
  spatially correlated (the stereo matcher's window smears errors over a few pixels).
* 1 mm quantisation (16UC1 in millimetres, depth_scale 0.001).
* Invalid (0) pixels: the occlusion band where the right imager cannot see what the left one
  does (left of near objects, width = disparity difference), a share of the pixels at depth
  edges, random dropouts, and a few small blobs of failed matching.
* Colour: shot noise and a slight blur of the lens.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ['SensorModel']

DARK_LEVEL = 60.0  # the two-sided preset's; tuned so 25-35 % of a simulated pile reads 0


@dataclass(frozen=True)
class SensorModel:
    """Parameters of the simulated RGB-D sensor (defaults: a D435-class camera).

    Attributes
    ----------
    sigma_at_1m : float
        Depth noise standard deviation at 1 m, metres; grows with z^2 (D435: ~1.5-2 mm at 1 m,
        ~6-8 mm at 2 m).
    correlated_share : float
        Share of the noise variance that is spatially correlated (a few pixels wide).
    baseline : float
        Stereo baseline, metres (D435: 0.050) for the occlusion band.
    depth_scale : float
        Metres per depth unit (1 mm).
    dropout : float
        Share of pixels that randomly read 0.
    edge_dropout : float
        Probability that a pixel on a depth edge reads 0.
    blobs : float
        Mean number of small invalid blobs per frame.
    blob_px : tuple of int
        Smallest and largest half-axis of those blobs, pixels.
    edge_band_px : int
        Depth edges blanked this many pixels to *each* side (0: only the D4xx's one-sided
        occlusion band and ``edge_dropout``).
    dark_level : float
        Surfaces darker than this (8-bit luminance of the clean colour image) return too
        little light and read 0 (a soft 20-level ramp: they flicker near it); 0: off.
    max_slope_deg : float
        Surfaces seen more obliquely than this read 0 (the sides of a log near its outline);
        90: off.
    rgb_noise : float
        Colour noise standard deviation, 8-bit levels.
    name : str
        The model's name, recorded with simulated sessions (``eval-labels`` reports per name).
    """

    sigma_at_1m: float = 0.0018
    correlated_share: float = 0.6
    baseline: float = 0.050
    depth_scale: float = 0.001
    dropout: float = 0.003
    edge_dropout: float = 0.5
    blobs: float = 2.0
    blob_px: tuple = (2, 8)
    edge_band_px: int = 0
    dark_level: float = 0.0
    max_slope_deg: float = 90.0
    rgb_noise: float = 2.5
    name: str = 'd4xx'

    @staticmethod
    def preset(name: str) -> 'SensorModel':
        """Return a named sensor model: ``d4xx`` (the default) or ``two-sided``."""
        if name == 'd4xx':
            return SensorModel()
        if name == 'two-sided':
            return SensorModel(sigma_at_1m=0.003, correlated_share=0.5, baseline=0.0,
                               depth_scale=0.0001, dropout=0.02, edge_dropout=1.0, blobs=6.0,
                               blob_px=(3, 12), edge_band_px=2, dark_level=DARK_LEVEL,
                               max_slope_deg=72.0, rgb_noise=3.0, name='two-sided')
        raise ValueError(f"sensor: expected 'd4xx' or 'two-sided', got {name!r}")

    def depth(self, depth_m: np.ndarray, fx: float, rng: np.random.Generator,
              rgb: np.ndarray | None = None) -> np.ndarray:
        """Make noisy, quantised uint16 depth in units of ``depth_scale``, 0 = invalid.

        ``rgb``: the clean colour image, for ``dark_level``.
        """
        z = np.where(np.isfinite(depth_m), depth_m, 0.0)
        h, w = z.shape
        sigma = self.sigma_at_1m * z * z
        white = _bank_crop(rng, (h, w))
        small = rng.standard_normal((h // 4 + 1, w // 4 + 1), dtype=np.float32)
        corr = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) * 1.5
        a = np.sqrt(self.correlated_share)
        b = np.sqrt(1 - self.correlated_share)
        noisy = z + sigma * (a * corr + b * white)
        out = np.rint(noisy / self.depth_scale)
        invalid = (z <= 0) | (out <= 0) | (out > 65535)

        # occlusion band: pixel p (column x) is hidden from the right imager when a pixel q at
        # x + s has a disparity larger by more than s
        with np.errstate(divide='ignore'):
            disp = np.where(z > 0, fx * self.baseline / np.where(z > 0, z, 1.0), 0.0)
        span = int(np.ceil(np.nanmax(disp) - np.nanmin(disp[disp > 0]))) if np.any(disp > 0) else 0
        band = np.zeros_like(invalid)
        for s in range(1, min(span, 64) + 1):
            band[:, :-s] |= (disp[:, s:] - disp[:, :-s]) > s
        invalid |= band

        # depth edges: relative jump over 2 % to a neighbour
        zz = z.astype(np.float32)
        grad = np.maximum(np.abs(cv2.Sobel(zz, cv2.CV_32F, 1, 0, ksize=3)),
                          np.abs(cv2.Sobel(zz, cv2.CV_32F, 0, 1, ksize=3)))
        edge = grad > 0.08 * np.maximum(zz, 1e-3)
        if self.edge_band_px > 0:  # blanked on both sides of the edge
            k = 2 * self.edge_band_px - 1
            invalid |= cv2.dilate(edge.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
        if self.max_slope_deg < 90:  # |dz/dx| * f / z is the tangent of the viewing angle
            slope = grad / 8.0 * fx / np.maximum(zz, 1e-3)
            invalid |= (slope > np.tan(np.radians(self.max_slope_deg))) & ~edge
        if self.dark_level > 0 and rgb is not None:
            lum = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
            p_dark = np.clip((self.dark_level + 10 - lum) / 20, 0, 1)
            invalid |= rng.random((h, w), dtype=np.float32) < p_dark
        edge_idx = np.flatnonzero(edge)
        invalid.flat[edge_idx[rng.random(len(edge_idx)) < self.edge_dropout]] = True
        invalid.flat[rng.integers(0, h * w, rng.binomial(h * w, self.dropout))] = True
        blobs = np.zeros((h, w), np.uint8)
        lo, hi = self.blob_px
        for _ in range(rng.poisson(self.blobs)):
            centre = (int(rng.integers(w)), int(rng.integers(h)))
            axes = (int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1)))
            cv2.ellipse(blobs, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        invalid |= blobs.astype(bool)
        out[invalid] = 0
        return out.astype(np.uint16)

    def rgb(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Colour image with lens blur and sensor noise."""
        img = cv2.GaussianBlur(rgb, (3, 3), 0.6)
        noise = _bank_crop(rng, img.shape[:2], channels=3) * self.rgb_noise
        return cv2.add(img.astype(np.float32), noise, dtype=cv2.CV_8U)


# Fresh Gaussian noise for every pixel of every frame is the costliest part of a frame; a bank
# of noise twice the image size, cropped at a random offset each frame, looks the same to any
# algorithm (no two frames share an offset-aligned pattern) at a fraction of the cost.
_BANKS: dict = {}


def _bank_crop(rng: np.random.Generator, shape: tuple, channels: int = 1) -> np.ndarray:
    h, w = shape
    key = (h, w, channels)
    bank = _BANKS.get(key)
    if bank is None:
        bank_rng = np.random.default_rng(0x5EED + h * 7919 + w * 31 + channels)
        size = (2 * h, 2 * w) if channels == 1 else (2 * h, 2 * w, channels)
        bank = _BANKS[key] = bank_rng.standard_normal(size, dtype=np.float32)
    y0, x0 = int(rng.integers(h)), int(rng.integers(w))
    return bank[y0:y0 + h, x0:x0 + w]
