//! An image classifier: PNG or JPEG bytes in, top-k classes out.
//!
//! The input `image` is a `[len]` u8 tensor holding an encoded PNG or JPEG file. The
//! component decodes it, converts it to the graph's channel count (1 = grayscale, 3 = RGB),
//! resizes it to the graph's `[1, C, H, W]` input (bilinear; untouched when already that
//! size), scales pixels to `[0, 1]` and normalises with the model file's `wisp.mean` /
//! `wisp.std` metadata (per channel, comma-separated; default 0 and 1). Outputs:
//! `probabilities` (`[1, classes]`), `top_k_indices` (`[k]`, i64) and `top_k_probabilities`
//! (`[k]`, f32), with k from `wisp.top_k` (default 5). If the metadata says
//! `wisp.output = logits`, softmax is applied first.

use image::imageops::FilterType;
use wisp_guest::ops::{softmax, top_k};
use wisp_guest::{Error, Graph, Model, NamedTensor, ServedModel, Signature, Tensor, TensorSpec, TensorType};

struct ImageClassifier;

fn per_channel(info: &ServedModel, key: &str, default: f32, channels: usize) -> Result<Vec<f32>, Error> {
    let Some(text) = wisp_guest::metadata(info, key) else {
        return Ok(vec![default; channels]);
    };
    let values = text
        .split(',')
        .map(|v| v.trim().parse::<f32>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Error::Internal(format!("metadata `{key}` is not a list of numbers")))?;
    match values.len() {
        1 => Ok(vec![values[0]; channels]),
        n if n == channels => Ok(values),
        _ => Err(Error::Internal(format!("metadata `{key}` needs 1 or {channels} values"))),
    }
}

impl Model for ImageClassifier {
    fn predict(mut inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, Error> {
        let encoded = wisp_guest::take_input(&mut inputs, "image")?;
        if encoded.ty != TensorType::U8 {
            return Err(Error::InvalidInput("`image` must be a u8 tensor of PNG or JPEG bytes".into()));
        }
        let info = wisp_guest::model_info();
        let spec = info
            .graph_signature
            .as_ref()
            .and_then(|s| s.inputs.first())
            .cloned()
            .ok_or_else(|| Error::Internal("the graph declares no input".into()))?;
        let [_, channels, height, width] = spec.shape[..] else {
            return Err(Error::Internal(format!("graph input `{}` is not [n, c, h, w]", spec.name)));
        };
        if channels != 1 && channels != 3 || height <= 0 || width <= 0 {
            return Err(Error::Internal(format!("graph input `{}` has shape {:?}", spec.name, spec.shape)));
        }
        let (c, h, w) = (channels as usize, height as u32, width as u32);
        let decoded = image::load_from_memory(&encoded.data)
            .map_err(|e| Error::InvalidInput(format!("`image` is not a readable PNG or JPEG: {e}")))?;
        let resize = |img: image::DynamicImage| {
            if img.width() == w && img.height() == h {
                img
            } else {
                img.resize_exact(w, h, FilterType::Triangle)
            }
        };
        let pixels: Vec<u8> = if c == 1 {
            resize(decoded).to_luma8().into_raw()
        } else {
            resize(decoded).to_rgb8().into_raw()
        };
        let mean = per_channel(&info, "wisp.mean", 0.0, c)?;
        let std = per_channel(&info, "wisp.std", 1.0, c)?;
        let plane = (h * w) as usize;
        // Interleaved HWC bytes to planar CHW floats.
        let mut chw = vec![0f32; c * plane];
        for (i, &p) in pixels.iter().enumerate() {
            let (pixel, channel) = (i / c, i % c);
            chw[channel * plane + pixel] = (f32::from(p) / 255.0 - mean[channel]) / std[channel];
        }
        let outputs = Graph::load_own()?.compute(vec![NamedTensor::new(
            spec.name.clone(),
            Tensor::from_values(&[1, c as u32, h, w], &chw),
        )])?;
        let scores = outputs
            .into_iter()
            .find(|o| o.tensor.ty == TensorType::F32)
            .ok_or_else(|| Error::InferenceFailed("the graph returned no f32 output".into()))?
            .tensor;
        let mut probabilities = scores.to_vec::<f32>()?;
        if wisp_guest::metadata(&info, "wisp.output").as_deref() == Some("logits") {
            probabilities = softmax(&probabilities);
        }
        let k = wisp_guest::metadata(&info, "wisp.top_k")
            .and_then(|v| v.parse().ok())
            .unwrap_or(5usize);
        let best = top_k(&probabilities, k);
        let indices: Vec<i64> = best.iter().map(|&(i, _)| i as i64).collect();
        let scores_k: Vec<f32> = best.iter().map(|&(_, p)| p).collect();
        Ok(vec![
            NamedTensor::new("probabilities", Tensor::from_values(&[1, probabilities.len() as u32], &probabilities)),
            NamedTensor::new("top_k_indices", Tensor::from_values(&[indices.len() as u32], &indices)),
            NamedTensor::new("top_k_probabilities", Tensor::from_values(&[scores_k.len() as u32], &scores_k)),
        ])
    }

    fn signature() -> Signature {
        let spec = |name: &str, ty, shape: Vec<i64>| TensorSpec {
            name: name.to_owned(),
            ty,
            shape,
        };
        Signature {
            inputs: vec![spec("image", TensorType::U8, vec![-1])],
            outputs: vec![
                spec("probabilities", TensorType::F32, vec![1, -1]),
                spec("top_k_indices", TensorType::I64, vec![-1]),
                spec("top_k_probabilities", TensorType::F32, vec![-1]),
            ],
        }
    }
}

wisp_guest::export_model!(ImageClassifier);
