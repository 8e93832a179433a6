"""Synthetic training slices generated on the fly from the allowed templates (see the reference doc).

Population templates are smooth averages: trained only on their intensities, a network learns that anatomy is
smooth; trained only on crisp synthetic labels, it over-sharpens anything smooth. Three sources are mixed:
- "labels": tissue maps (GM, WM, CSF from MNI152 2009a) sharpened into near-crisp labels, a synthetic
  head (extra-axial CSF, skull, marrow, scalp fat, skin) grown around the brain, and a random MR contrast
  per label (covers T1, T2, PD, FLAIR, post-contrast looks);
- "template": the 0.5 mm T1 template intensities under a random monotonic contrast change;
- "shapes": generic random label fields (no anatomy at all) for content-agnostic restoration.
Every sample gets random 3D pose, pixel size (per source, see DEFAULT_SOURCES), elastic deformation, slice
spacing/thickness, lesion-like blobs (some ring-enhancing), thin sheets, vessel-like tubes, smooth and voxel-scale
(power-law) texture and a bias field. The three neighbouring
slices of a sample come from one 3D scene, so through-plane context is physical.
The held-out evaluation volumes (MNI152NLin6Asym T1 with head, SPM avg152 T2/PD, real scans) are never read here.
"""

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

TEMPLATE_FILES = {
    "t1_05mm": "Template_05mm_bet.nii.gz",
    "t1_mni09a": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm_mni09a": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm_mni09a": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
# Label channels of the synthetic head.
LABELS = ("air", "csf", "gm", "wm", "skull", "marrow", "fat", "skin")


def _read_nifti(path: Path):
    """(array [k,j,i], IJK-to-RAS) with SimpleITK, or nibabel where SimpleITK is absent (GPU training image)."""
    try:
        import SimpleITK as sitk

        from MRQualityMetricsLib.volume import volume_from_sitk

        volume = volume_from_sitk(sitk.ReadImage(str(path)), name=path.name)
        return volume.array, volume.ijk_to_ras
    except ImportError:
        import nibabel

        image = nibabel.load(str(path))  # nibabel's affine is already IJK-to-RAS, data is [i,j,k]
        return np.asarray(image.dataobj).transpose(2, 1, 0), image.affine


def _load_world_volume(path: Path, device):
    """Volume as a (1, 1, D, H, W) float tensor plus its RAS-to-normalised-grid affine for grid_sample."""
    array, ijk_to_ras = _read_nifti(path)
    data = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)
    shape_ijk = np.array(array.shape[::-1], dtype=float)
    # grid_sample wants (x, y, z) = (i, j, k) in [-1, 1] with align_corners=True.
    ijk_to_norm = np.eye(4)
    ijk_to_norm[:3, :3] = np.diag(2.0 / (shape_ijk - 1))
    ijk_to_norm[:3, 3] = -1.0
    ras_to_norm = ijk_to_norm @ np.linalg.inv(ijk_to_ras)
    return data[None, None], torch.tensor(ras_to_norm, dtype=torch.float32, device=device)


def _shells(mask: torch.Tensor, radii) -> list:
    """Masks dilated by each radius (voxels), by repeated 3x3x3 dilation (large pooling kernels are slow)."""
    out, current = [], mask
    for step in range(1, max(radii) + 1):
        if step % 2:  # alternate cube and cross elements: octagon-like, not box-shaped, heads
            current = F.max_pool3d(current, 3, stride=1, padding=1)
        else:
            current = torch.maximum(
                torch.maximum(F.max_pool3d(current, (3, 1, 1), stride=1, padding=(1, 0, 0)), F.max_pool3d(current, (1, 3, 1), stride=1, padding=(0, 1, 0))),
                F.max_pool3d(current, (1, 1, 3), stride=1, padding=(0, 0, 1)),
            )
        if step in radii:
            out.append(current)
    return out


class TemplateBank:
    """The training templates on the device, with a synthetic head around the MNI152 2009a brain."""

    def __init__(self, template_dir, device="cpu"):
        template_dir = Path(template_dir)
        missing = [name for name in TEMPLATE_FILES.values() if not (template_dir / name).exists()]
        if missing:
            raise ValueError(f"training templates missing in {template_dir}: {missing} (run `mrsuperres fetch-data`)")
        self.device = torch.device(device)
        t1, self.mni_ras_to_norm = _load_world_volume(template_dir / TEMPLATE_FILES["t1_mni09a"], device)
        gm, _ = _load_world_volume(template_dir / TEMPLATE_FILES["gm_mni09a"], device)
        wm, _ = _load_world_volume(template_dir / TEMPLATE_FILES["wm_mni09a"], device)
        gm, wm = gm / 255.0, wm / 255.0
        brain = (t1 > 0.05 * t1.max()).float()
        csf = (brain - gm - wm).clamp(min=0)
        # Head layers grown outwards from the brain on the 1 mm grid (radii in voxels = mm).
        shells = _shells(brain, (3, 6, 9, 13, 15))
        extra_csf = shells[0] - brain
        skull = shells[1] - shells[0]
        marrow = shells[2] - shells[1]
        fat = shells[3] - shells[2]
        skin = shells[4] - shells[3]
        air = 1.0 - shells[4]
        labels = torch.cat([air, csf + extra_csf, gm, wm, skull, marrow, fat, skin], dim=1)
        # Smooth the synthetic shells slightly so label sharpening creates realistic partial volume.
        self.labels = F.avg_pool3d(labels, 3, stride=1, padding=1).half()
        self.t1_fine, self.fine_ras_to_norm = _load_world_volume(template_dir / TEMPLATE_FILES["t1_05mm"], device)
        self.t1_fine = (self.t1_fine / self.t1_fine.max()).half()
        # Sampling centres: inside the brain bounding box (RAS mm).
        self.centre_low = torch.tensor([-60.0, -90.0, -45.0], device=device)
        self.centre_high = torch.tensor([60.0, 60.0, 70.0], device=device)


def _random_rotation(batch, generator, device, max_tilt_degrees=20.0):
    """Rotations that mostly give axial, coronal or sagittal slices, tilted by up to max_tilt."""
    base = torch.tensor(
        [
            [[1, 0, 0], [0, 1, 0], [0, 0, 1]],  # axial: rows along A, columns along R, normal S
            [[1, 0, 0], [0, 0, 1], [0, 1, 0]],  # coronal
            [[0, 1, 0], [0, 0, 1], [1, 0, 0]],  # sagittal
        ],
        dtype=torch.float32,
        device=device,
    )
    choice = torch.randint(0, 3, (batch,), generator=generator, device=device)
    angles = (torch.rand((batch, 3), generator=generator, device=device) * 2 - 1) * math.radians(max_tilt_degrees)
    angles[:, 2] = (torch.rand(batch, generator=generator, device=device) * 2 - 1) * math.pi  # any in-plane angle
    cx, cy, cz = torch.cos(angles).unbind(1)
    sx, sy, sz = torch.sin(angles).unbind(1)
    one, zero = torch.ones_like(cx), torch.zeros_like(cx)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], 1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], 1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], 1).view(-1, 3, 3)
    return base[choice] @ rx @ ry @ rz


def _unit_sd(images: torch.Tensor) -> torch.Tensor:
    """(B, ...) images scaled to unit SD per sample."""
    return images / images.flatten(1).std(dim=1).view(-1, *[1] * (images.dim() - 1)).clamp(min=1e-8)


def power_law_texture(shape, exponent, generator, device):
    """Unit-SD random images (B, C, H, W) with power spectrum ~ 1/|k|^exponent (exponent per sample, (B,)).

    Real anatomy and template images carry texture down to the voxel scale; a truth without it teaches the
    network to erase any fine texture it is shown.
    """
    white = torch.randn(shape, generator=generator, device=device)
    rows = torch.fft.fftfreq(shape[-2], device=device)[:, None]
    cols = torch.fft.fftfreq(shape[-1], device=device)[None, :]
    radius = (rows**2 + cols**2).sqrt().clamp(min=1.0 / max(shape[-2:]))
    filters = radius[None] ** (-exponent.view(-1, 1, 1) / 2)
    texture = torch.fft.ifft2(torch.fft.fft2(white) * filters[:, None]).real
    return _unit_sd(texture)


def power_law_texture_at_depths(depth_px, size, exponent, generator, device, planes=32):
    """Unit-SD slices (B, n, size, size) of 3D power-law fields, cut at through-plane positions depth_px (B, n) pixels.

    The 3D spectrum ~ 1/|k|^(exponent + 1) gives each cut about the 2D spectrum of power_law_texture (closely for
    smooth textures; the flattest fall off faster, as a cut of a field with voxel-scale detail does), and slices a
    pixel apart share their texture as real anatomy's do. The field is periodic over `planes` planes spaced to cover
    twice the slab, so no two cuts see each other through the wrap-around.
    """
    batch = depth_px.shape[0]
    span = depth_px.abs().amax(1).clamp(min=1.0)
    step = torch.clamp(4 * span / planes, min=1.0)  # pixels between planes, per sample
    white = torch.randn((batch, planes, size, size), generator=generator, device=device)
    rows = torch.fft.fftfreq(size, device=device).view(1, 1, -1, 1)
    cols = torch.fft.fftfreq(size, device=device).view(1, 1, 1, -1)
    depths = torch.fft.fftfreq(planes, device=device).view(1, -1, 1, 1) / step.view(-1, 1, 1, 1)
    radius = (rows**2 + cols**2 + depths**2).sqrt().clamp(min=1.0 / size)
    field = torch.fft.ifftn(torch.fft.fftn(white, dim=(1, 2, 3)) * radius ** (-(exponent.view(-1, 1, 1, 1) + 1) / 2),
                            dim=(1, 2, 3)).real
    position = depth_px / step.view(-1, 1)
    lower = position.floor()
    weight = (position - lower).view(batch, -1, 1, 1)
    index = lower.long().remainder(planes).view(batch, -1, 1, 1).expand(-1, -1, size, size)
    below = field.gather(1, index)
    above = field.gather(1, (index + 1).remainder(planes))
    texture = below * (1 - weight) + above * weight
    return _unit_sd(texture)


def smooth_field_at_depths(depth_px, size, cells, generator, device):
    """Smooth random fields (B, n, size, size) from a coarse grid of `cells` per row, with cubic cells, cut at
    through-plane positions depth_px (B, n) pixels (so slices closer than a cell share the field)."""
    batch = depth_px.shape[0]
    cell = (size - 1) / (cells - 1)
    half = math.ceil(depth_px.abs().max().item() / cell) + 1
    coarse = torch.randn((batch, 1, 2 * half + 1, cells, cells), generator=generator, device=device)
    across = torch.linspace(-1, 1, size, device=device)
    z = (depth_px / (cell * half)).view(batch, -1, 1, 1).expand(-1, -1, size, size)
    y = across.view(1, 1, -1, 1).expand_as(z)
    x = across.view(1, 1, 1, -1).expand_as(z)
    grid = torch.stack([x, y, z], dim=-1)
    return F.grid_sample(coarse, grid, mode="bilinear", align_corners=True)[:, 0]


def _smooth_noise(batch, channels, out_shape, cells, generator, device):
    """Smooth random fields (B, C, *out_shape) from a coarse random grid of `cells` per axis."""
    coarse = torch.randn((batch, channels) + tuple(cells), generator=generator, device=device)
    mode = "trilinear" if len(out_shape) == 3 else "bilinear"
    return F.interpolate(coarse, size=out_shape, mode=mode, align_corners=True)


# Pixel size ranges (mm per high-resolution pixel) per source. Magnified templates give smooth truths and
# unmagnified ones sharp truths; both occur in real anatomy, and a network that only ever sees sharp truths
# over-sharpens smooth structures.
DEFAULT_SOURCES = {
    "template": {"fraction": 0.3, "pixel_mm": (0.35, 1.0)},  # 0.5 mm T1 template
    "labels": {"fraction": 0.4, "pixel_mm": (0.5, 1.6)},  # 1 mm tissue maps
    "shapes": {"fraction": 0.3, "pixel_mm": (0.4, 1.6)},  # scale-free random label fields
}


# Voxel-scale multiplicative texture of the truth: up to max_amplitude (relative SD), spectrum 1/|k|^exponent
# with the exponent drawn in the range. Flat (low exponent) texture looks like noise to the network, which then
# learns to keep noise; a training config may narrow it.
# correlated_slices: False draws both textures afresh for every slice (what the shipped models saw), so neighbouring
# slices differ by texture that looks like noise; True cuts the slices from 3D fields at their positions, as in real
# anatomy. (It did not change the five-slice unet48's scores: docs/evaluation/model-comparison.md, session 13.)
DEFAULT_FINE_TEXTURE = {"max_amplitude": 0.08, "exponent": (0.5, 3.0), "correlated_slices": False}
# Lesion-like ellipsoids per sample: `count` candidates, each present with `probability`, radius drawn uniformly in
# radius_mm. (Twice as many, down to 0.75 mm, did not change how much a 3 mm lesion is flattened at x2:
# docs/evaluation/model-comparison.md.)
DEFAULT_LESIONS = {"count": 4, "probability": 0.5, "radius_mm": (1.0, 8.0)}


class SliceSynthesizer:
    """Draws batches of clean high-resolution slice stacks (B, context, H, W) in [0, ~1]."""

    def __init__(self, bank: TemplateBank, size: int = 192, context: int = 3, generator: torch.Generator | None = None,
                 sources: dict | None = None, fine_texture: dict | None = None, lesions: dict | None = None):
        self.sources = sources or DEFAULT_SOURCES
        self.fine_texture = {**DEFAULT_FINE_TEXTURE, **(fine_texture or {})}
        self.lesions = {**DEFAULT_LESIONS, **(lesions or {})}
        self.bank = bank
        self.size = size
        self.context = context
        self.device = bank.device
        self.generator = generator

    def _rand(self, *shape):
        return torch.rand(shape, generator=self.generator, device=self.device)

    def _uniform(self, low, high, *shape):
        return low + (high - low) * self._rand(*shape)

    def _choose_sources(self, batch):
        """Source index per sample (order of self.sources) and its pixel size in mm."""
        names = list(self.sources)
        weights = torch.tensor([self.sources[n]["fraction"] for n in names], device=self.device)
        choice = torch.multinomial(weights, batch, replacement=True, generator=self.generator)
        low = torch.tensor([math.log(self.sources[n]["pixel_mm"][0]) for n in names], device=self.device)[choice]
        high = torch.tensor([math.log(self.sources[n]["pixel_mm"][1]) for n in names], device=self.device)[choice]
        return choice, torch.exp(low + (high - low) * self._rand(batch))

    def sample_points(self, batch, pixel):
        """RAS points (B, context, sub, H, W, 3) of a random oblique slab, sub = thickness sub-samples, each
        sub-sample's through-plane offset (B, context, sub) in mm from the slab centre, and the slice spacing (B,)."""
        size, context, sub = self.size, self.context, 3
        thick_slices = self._rand(batch) < 0.5
        spacing = torch.where(thick_slices, self._uniform(2.0, 6.5, batch), self._uniform(0.5, 1.5, batch))
        thickness = spacing * self._uniform(0.5, 1.0, batch)
        rotation = _random_rotation(batch, self.generator, self.device)
        centre = self.bank.centre_low + (self.bank.centre_high - self.bank.centre_low) * self._rand(batch, 3)
        offsets = (torch.arange(size, device=self.device, dtype=torch.float32) - size / 2 + 0.5)
        u = offsets.view(1, 1, 1, size, 1) * pixel.view(-1, 1, 1, 1, 1)
        v = offsets.view(1, 1, 1, 1, size) * pixel.view(-1, 1, 1, 1, 1)
        slice_index = torch.arange(context, device=self.device, dtype=torch.float32) - context // 2
        sub_offset = (torch.arange(sub, device=self.device, dtype=torch.float32) / (sub - 1) - 0.5)
        w = slice_index.view(1, -1, 1, 1, 1) * spacing.view(-1, 1, 1, 1, 1) + sub_offset.view(1, 1, -1, 1, 1) * thickness.view(-1, 1, 1, 1, 1)
        u, v, w = torch.broadcast_tensors(u, v, w)
        local = torch.stack([v, u, w], dim=-1)  # columns, rows, normal
        points = torch.einsum("bij,bcshwj->bcshwi", rotation, local) + centre.view(-1, 1, 1, 1, 1, 3)
        # Elastic deformation: smooth displacement up to ~3 mm.
        displacement = _smooth_noise(batch, 3, (context * sub, size, size), (2, 5, 5), self.generator, self.device)
        displacement = displacement * self._uniform(0.0, 3.0, batch).view(-1, 1, 1, 1, 1)
        points = points + displacement.permute(0, 2, 3, 4, 1).reshape(points.shape)
        # Global scaling of anatomy (head sizes differ): scale points about the centre.
        scale = self._uniform(0.85, 1.15, batch).view(-1, 1, 1, 1, 1, 1)
        points = (points - centre.view(-1, 1, 1, 1, 1, 3)) * scale + centre.view(-1, 1, 1, 1, 1, 3)
        return points, w[:, :, :, 0, 0], spacing

    def _sample_volume(self, volume, ras_to_norm, points):
        """grid_sample a (1, C, D, H, W) volume at RAS points (B, ..., 3) -> (B, C, n)."""
        batch = points.shape[0]
        flat = points.reshape(batch, -1, 3)
        norm = flat @ ras_to_norm[:3, :3].T + ras_to_norm[:3, 3]
        grid = norm.view(batch, 1, 1, -1, 3).to(volume.dtype)
        out = F.grid_sample(volume.expand(batch, -1, -1, -1, -1), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        return out.view(batch, volume.shape[1], -1).float()

    def _label_contrast(self, probabilities):
        """Random MR contrast from label probabilities (B, L, n) -> (B, n)."""
        batch, n_labels = probabilities.shape[:2]
        sharpness = self._uniform(1.0, 6.0, batch).view(-1, 1, 1)
        p = probabilities.clamp(min=1e-4) ** sharpness
        p = p / p.sum(1, keepdim=True)
        means = self._rand(batch, n_labels)
        means[:, 0] = 0.0  # air stays dark
        means[:, 4] = means[:, 4] * 0.3  # cortical bone is dark in MR
        return (p * means.unsqueeze(-1)).sum(1)

    def _shapes_image(self, points):
        """Random label fields with no anatomy (content-agnostic edges)."""
        batch = points.shape[0]
        n_labels = 6
        cells = 12
        field = torch.randn((batch, n_labels, cells, cells, cells), generator=self.generator, device=self.device)
        extent = self._uniform(40.0, 200.0, batch).view(-1, 1, 1)  # mm covered by the coarse grid
        centre = points.reshape(batch, -1, 3).mean(1, keepdim=True)
        norm = ((points.reshape(batch, -1, 3) - centre) / extent).clamp(-1, 1)
        out = F.grid_sample(field, norm.view(batch, 1, 1, -1, 3), mode="bilinear", align_corners=True).view(batch, n_labels, -1)
        return self._label_contrast(torch.softmax(out * self._uniform(2.0, 20.0, batch).view(-1, 1, 1), dim=1))

    def _add_blobs_and_tubes(self, image, points):
        """Lesion-like ellipsoids (some ring-enhancing) and thin vessel-like tubes, in world space."""
        batch = image.shape[0]
        flat = points.reshape(batch, -1, 3)
        centre = flat.mean(1, keepdim=True)
        for _ in range(self.lesions["count"]):
            present = (self._rand(batch) < self.lesions["probability"]).float().view(-1, 1)
            position = centre + (self._rand(batch, 1, 3) * 2 - 1) * 25
            radius = self._uniform(*self.lesions["radius_mm"], batch).view(-1, 1)
            distance = (flat - position).norm(dim=-1) / radius
            edge = self._uniform(0.05, 0.3, batch).view(-1, 1)
            inside = torch.sigmoid((1 - distance) / edge)
            ring = (self._rand(batch) < 0.3).float().view(-1, 1)
            profile = inside * (1 - ring * torch.sigmoid((0.7 - distance) / edge))
            contrast = self._uniform(-0.6, 0.8, batch).view(-1, 1)
            image = image + present * contrast * profile
        for _ in range(2):  # thin sheets (like the septum pellucidum or falx), limited in extent
            present = (self._rand(batch) < 0.4).float().view(-1, 1)
            anchor = centre + (self._rand(batch, 1, 3) * 2 - 1) * 30
            normal = F.normalize(torch.randn((batch, 1, 3), generator=self.generator, device=self.device), dim=-1)
            offset = flat - anchor
            across = (offset * normal).sum(-1).abs()
            extent = self._uniform(8.0, 30.0, batch).view(-1, 1)
            width = self._uniform(0.3, 1.2, batch).view(-1, 1)
            contrast = self._uniform(-0.6, 0.8, batch).view(-1, 1)
            sheet = torch.sigmoid((width - across) / (0.15 * width)) * torch.sigmoid((extent - offset.norm(dim=-1)) / 2.0)
            image = image + present * contrast * sheet
        for _ in range(6):
            present = (self._rand(batch) < 0.5).float().view(-1, 1)
            anchor = centre + (self._rand(batch, 1, 3) * 2 - 1) * 40
            direction = F.normalize(torch.randn((batch, 1, 3), generator=self.generator, device=self.device), dim=-1)
            offset = flat - anchor
            distance = (offset - (offset * direction).sum(-1, keepdim=True) * direction).norm(dim=-1)
            width = self._uniform(0.3, 1.5, batch).view(-1, 1)
            contrast = self._uniform(-0.5, 0.8, batch).view(-1, 1)
            image = image + present * contrast * torch.sigmoid((width - distance) / (0.15 * width))
        return image

    def sample(self, batch):
        """Clean slice stacks (B, context, H, W), thickness-averaged, the pixel size and the slice spacing (B,) in mm."""
        source, pixel = self._choose_sources(batch)
        names = list(self.sources)
        points, depth, spacing = self.sample_points(batch, pixel)
        depth_px = depth / pixel.view(-1, 1, 1)
        correlated = self.fine_texture["correlated_slices"]
        shape = points.shape[:5]  # B, context, sub, H, W
        labels = self._sample_volume(self.bank.labels, self.bank.mni_ras_to_norm, points)
        labels[:, 0] = (1 - labels[:, 1:].sum(1)).clamp(0, 1)  # outside the template grid is air
        image = self._label_contrast(labels)
        use_template = source == names.index("template")
        if use_template.any():
            fine = self._sample_volume(self.bank.t1_fine, self.bank.fine_ras_to_norm, points[use_template])[:, 0]
            gamma = self._uniform(0.5, 2.0, int(use_template.sum())).view(-1, 1)
            invert = (self._rand(int(use_template.sum())) < 0.4).float().view(-1, 1)
            fine = fine.clamp(min=0) ** gamma
            fine = invert * (fine > 0.02).float() * (1.05 - fine) + (1 - invert) * fine
            head = labels[use_template]
            head_only = self._label_contrast(head) * (1 - head[:, 1:4].sum(1))  # keep the synthetic head
            image[use_template] = fine * head[:, 1:4].sum(1) + head_only
        use_shapes = source == names.index("shapes")
        if use_shapes.any():
            image[use_shapes] = self._shapes_image(points[use_shapes])
        image = self._add_blobs_and_tubes(image, points)
        image = image.view(shape)
        # Fine multiplicative texture and a smooth bias field.
        stack = (shape[1] * shape[2],) + tuple(shape[3:])
        if correlated:
            texture = smooth_field_at_depths(depth_px.reshape(batch, -1), self.size, 48, self.generator, self.device)
        else:
            texture = _smooth_noise(batch, 1, stack, (self.context * 3, 48, 48), self.generator, self.device)
        texture = texture.reshape(shape)
        image = image * (1 + self._uniform(0.0, 0.08, batch).view(-1, 1, 1, 1, 1) * texture)
        bias = _smooth_noise(batch, 1, stack, (2, 3, 3), self.generator, self.device).view(shape)
        image = image * torch.exp(self._uniform(0.0, 0.3, batch).view(-1, 1, 1, 1, 1) * bias)
        image = image.clamp(min=0).mean(dim=2)  # slice profile: average over the slice thickness
        low, high = self.fine_texture["exponent"]
        exponent = self._uniform(low, high, batch)
        if correlated:  # cut at the slice centres (the middle thickness sub-sample)
            fine = power_law_texture_at_depths(depth_px[:, :, shape[2] // 2], self.size, exponent, self.generator, self.device)
        else:
            fine = power_law_texture(image.shape, exponent, self.generator, self.device)
        amplitude = self._uniform(0.0, self.fine_texture["max_amplitude"], batch).view(-1, 1, 1, 1)
        image = (image * (1 + amplitude * fine)).clamp(min=0)
        noise_only = self._rand(batch) < 0.03  # empty scenes teach the net not to invent structure
        image[noise_only] = 0
        return image, pixel, spacing
