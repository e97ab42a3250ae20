//! The Open Inference Protocol V2 (KServe V2 / Triton HTTP) on the wire, with Triton's
//! binary tensor data extension: pure decoding of infer requests and encoding of responses
//! and metadata, no I/O.
//!
//! A request body is a JSON header, optionally followed by raw tensor bytes. When the
//! `Inference-Header-Content-Length` header is present, the first that many bytes are the
//! JSON and the rest are the bytes of the inputs whose `parameters.binary_data_size` says
//! how many of them are theirs, in input order. Outputs are returned as JSON `data`, or as
//! raw bytes appended to the response when asked with `parameters.binary_data` (per
//! output) or `parameters.binary_data_output` (the request's default); the response then
//! carries its own `Inference-Header-Content-Length`.
//!
//! See <https://github.com/kserve/open-inference-protocol> and Triton's
//! `docs/protocol/extension_binary_data.md`.

use std::collections::HashSet;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use wisp_host::{NamedTensor, Tensor, TensorType};

use super::tensors::{json_values, tensor_from_json};
use crate::error::{Error, ErrorCode};
use crate::inspect::{ClassLabels, DType, ModelSignature, TensorSpec};

/// The header giving the length of the JSON part of a body that has binary tensor data.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// The protocol extensions wisp implements, as listed in the server metadata.
pub const EXTENSIONS: &[&str] = &["binary_tensor_data"];

/// Why a request could not be read, or a response not written as asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    /// The JSON header is not JSON.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The request is not a V2 inference request.
    #[error("{0}")]
    Malformed(String),
    /// An input does not fit the model or cannot be read.
    #[error("input `{name}`: {message}")]
    Input { name: String, message: String },
    /// A requested output does not exist or cannot be returned as asked.
    #[error("output `{name}`: {message}")]
    Output { name: String, message: String },
}

/// The V2 name of an element type.
pub fn datatype(ty: TensorType) -> &'static str {
    match ty {
        TensorType::F32 => "FP32",
        TensorType::F64 => "FP64",
        TensorType::I32 => "INT32",
        TensorType::I64 => "INT64",
        TensorType::U8 => "UINT8",
        TensorType::String => "BYTES",
    }
}

/// The V2 name of a signature dtype, including those wisp cannot pass to a model.
pub fn datatype_of_dtype(dtype: DType) -> &'static str {
    match dtype {
        DType::Bool => "BOOL",
        DType::U8 => "UINT8",
        DType::U16 => "UINT16",
        DType::U32 => "UINT32",
        DType::U64 => "UINT64",
        DType::I8 => "INT8",
        DType::I16 => "INT16",
        DType::I32 => "INT32",
        DType::I64 => "INT64",
        DType::F16 => "FP16",
        DType::F32 => "FP32",
        DType::F64 => "FP64",
        DType::String => "BYTES",
    }
}

/// The element type of a V2 datatype name, if wisp can pass it to a model.
pub fn tensor_type_of(datatype: &str) -> Option<TensorType> {
    match datatype {
        "FP32" => Some(TensorType::F32),
        "FP64" => Some(TensorType::F64),
        "INT32" => Some(TensorType::I32),
        "INT64" => Some(TensorType::I64),
        "UINT8" => Some(TensorType::U8),
        // Elements 4-byte little-endian length-prefixed, as in Triton's binary data: the
        // layout of wisp's string tensors, so binary `BYTES` data passes through as it is.
        "BYTES" => Some(TensorType::String),
        _ => None,
    }
}

/// Server metadata (`GET /v2`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerMetadata {
    pub name: String,
    pub version: String,
    pub extensions: Vec<String>,
}

impl ServerMetadata {
    /// This server's metadata.
    pub fn wisp() -> Self {
        Self {
            name: "wisp".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: EXTENSIONS.iter().map(|&e| e.to_owned()).collect(),
        }
    }
}

/// An input or output as described in model metadata.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TensorMetadata {
    pub name: String,
    /// `FP32`, `FP64`, `INT32`, `INT64`, `UINT8` (or another V2 name wisp cannot pass).
    pub datatype: String,
    /// Dimensions; `-1` is dynamic.
    pub shape: Vec<i64>,
    /// wisp's addition to V2's tensor metadata, only on a classifier's probabilities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<TensorParameters>,
}

/// What wisp says of a tensor beyond V2's name, datatype and shape.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TensorParameters {
    /// The class of each column of the last dimension, in order (an ONNX `ZipMap`
    /// output, served as the probability tensor it wraps).
    pub class_labels: ClassLabels,
}

impl From<&TensorSpec> for TensorMetadata {
    fn from(spec: &TensorSpec) -> Self {
        Self {
            name: spec.name.clone(),
            datatype: datatype_of_dtype(spec.dtype).to_owned(),
            shape: spec.shape.clone(),
            parameters: spec
                .class_labels
                .clone()
                .map(|class_labels| TensorParameters { class_labels }),
        }
    }
}

/// Model metadata (`GET /v2/models/{name}[/versions/{v}]`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelMetadata {
    pub name: String,
    /// Every version of the model.
    pub versions: Vec<String>,
    /// How the version runs: `onnx` or `wasm-component`.
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

impl ModelMetadata {
    /// The metadata of a model whose described version has `signature`.
    pub fn new(
        name: &str,
        versions: Vec<String>,
        platform: &str,
        signature: &ModelSignature,
    ) -> Self {
        Self {
            name: name.to_owned(),
            versions,
            platform: platform.to_owned(),
            inputs: signature.inputs.iter().map(TensorMetadata::from).collect(),
            outputs: signature.outputs.iter().map(TensorMetadata::from).collect(),
        }
    }
}

#[derive(Deserialize)]
struct RequestHeader {
    id: Option<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    inputs: Vec<InputHeader>,
    outputs: Option<Vec<OutputHeader>>,
}

#[derive(Deserialize)]
struct InputHeader {
    name: String,
    shape: Vec<Value>,
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    data: Option<Value>,
}

#[derive(Deserialize)]
struct OutputHeader {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

/// A decoded inference request.
#[derive(Debug, Clone, PartialEq)]
pub struct InferRequest {
    /// The request id, echoed in the response.
    pub id: Option<String>,
    /// The inputs, checked against the signature's names and element types.
    pub inputs: Vec<NamedTensor>,
    /// Which outputs to return, and how.
    pub outputs: OutputSelection,
}

/// The outputs a request asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSelection {
    /// The named outputs, in the order asked; `None` for all of them.
    pub requested: Option<Vec<RequestedOutput>>,
    /// Whether outputs not asked for individually come back as binary data.
    pub binary_by_default: bool,
}

/// One output a request asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedOutput {
    pub name: String,
    /// Return it as binary data after the JSON, rather than as JSON `data`.
    pub binary: bool,
}

/// Splits a body into its JSON header and binary part, as `Inference-Header-Content-Length`
/// says (`None`: the whole body is JSON).
pub fn split_body(body: &[u8], header_length: Option<usize>) -> Result<(&[u8], &[u8]), CodecError> {
    match header_length {
        None => Ok((body, &[])),
        Some(length) if length <= body.len() => Ok(body.split_at(length)),
        Some(length) => Err(CodecError::Malformed(format!(
            "Inference-Header-Content-Length is {length}, but the body has {} bytes",
            body.len()
        ))),
    }
}

/// Decodes an inference request: `header_length` is the `Inference-Header-Content-Length`
/// header, if present. Input names and datatypes are checked against `signature` when it
/// names any input; shapes are the runtime's to check.
pub fn decode_request(
    body: &[u8],
    header_length: Option<usize>,
    signature: &ModelSignature,
) -> Result<InferRequest, CodecError> {
    parse_request(Bytes::copy_from_slice(body), header_length)?.check(signature)
}

/// A request whose JSON header is parsed, its inputs not yet checked against a model.
pub struct ParsedRequest {
    header: RequestHeader,
    body: Bytes,
    /// Where the binary tensor data starts in `body`.
    binary_start: usize,
    header_length: Option<usize>,
}

impl ParsedRequest {
    /// The request's `parameters.segment`: the caller's segment attribute for ground-truth
    /// monitoring; `Err` if it is there but not a string.
    pub fn segment(&self) -> Result<Option<String>, CodecError> {
        match self.header.parameters.get("segment") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(segment)) => Ok(Some(segment.clone())),
            Some(_) => Err(CodecError::Malformed(
                "parameters.segment must be a string".to_owned(),
            )),
        }
    }
}

/// Parses a request's structure (the JSON header, where binary data starts), before the
/// model that answers it is known.
pub fn parse_request(
    body: Bytes,
    header_length: Option<usize>,
) -> Result<ParsedRequest, CodecError> {
    let (json, _) = split_body(&body, header_length)?;
    let header: RequestHeader = serde_json::from_slice(json).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            CodecError::Json(e.to_string())
        } else {
            CodecError::Malformed(format!("not a V2 inference request: {e}"))
        }
    })?;
    Ok(ParsedRequest {
        header,
        binary_start: header_length.unwrap_or(body.len()),
        body,
        header_length,
    })
}

impl ParsedRequest {
    /// The inputs, checked against `signature` (names and datatypes when it names any).
    pub fn check(self, signature: &ModelSignature) -> Result<InferRequest, CodecError> {
        let Self {
            header,
            body,
            binary_start,
            header_length,
        } = self;
        let mut binary = &body[binary_start..];
        let mut seen = HashSet::new();
        let mut inputs = Vec::with_capacity(header.inputs.len());
        for input in header.inputs {
            let error = |message: String| CodecError::Input {
                name: input.name.clone(),
                message,
            };
            if !seen.insert(input.name.clone()) {
                return Err(error("given twice".into()));
            }
            let ty = input_type(&input, signature).map_err(error)?;
            let shape = input
                .shape
                .iter()
                .map(|d| {
                    d.as_u64()
                        .and_then(|d| u32::try_from(d).ok())
                        .ok_or_else(|| {
                            error(format!("shape must be non-negative integers, got {d}"))
                        })
                })
                .collect::<Result<Vec<u32>, _>>()?;
            if let Some(key) = input
                .parameters
                .keys()
                .find(|k| k.starts_with("shared_memory"))
            {
                return Err(error(format!("`{key}`: shared memory is not supported")));
            }
            let tensor = match (input.parameters.get("binary_data_size"), &input.data) {
                (Some(_), Some(_)) => {
                    return Err(error("give `data` or `binary_data_size`, not both".into()));
                }
                (None, None) => return Err(error("needs `data` or `binary_data_size`".into())),
                (None, Some(data)) => tensor_from_json(ty, Some(shape), data).map_err(error)?,
                (Some(size), None) => {
                    let size = size
                        .as_u64()
                        .and_then(|s| usize::try_from(s).ok())
                        .ok_or_else(|| {
                            error(format!("binary_data_size must be a size, got {size}"))
                        })?;
                    if size > binary.len() {
                        return Err(error(format!(
                            "binary_data_size is {size}, but only {} bytes of binary data are left{}",
                            binary.len(),
                            if header_length.is_none() {
                                " (no Inference-Header-Content-Length header)"
                            } else {
                                ""
                            }
                        )));
                    }
                    let (bytes, rest) = binary.split_at(size);
                    binary = rest;
                    let tensor = Tensor {
                        ty,
                        shape,
                        data: bytes.to_vec(),
                    };
                    tensor.check_layout().map_err(error)?;
                    tensor
                }
            };
            inputs.push(NamedTensor::new(input.name, tensor));
        }
        if !binary.is_empty() {
            return Err(CodecError::Malformed(format!(
                "{} bytes of binary data follow the JSON header but no input claims them",
                binary.len()
            )));
        }
        if let Some(missing) = signature
            .inputs
            .iter()
            .find(|spec| !seen.contains(&spec.name))
        {
            return Err(CodecError::Input {
                name: missing.name.clone(),
                message: "missing; every input of the model is required".into(),
            });
        }

        let binary_by_default = match header.parameters.get("binary_data_output") {
            None => false,
            Some(value) => value.as_bool().ok_or_else(|| {
                CodecError::Malformed(format!("binary_data_output must be a boolean, got {value}"))
            })?,
        };
        let requested = header
            .outputs
            .map(|outputs| {
                outputs
                    .into_iter()
                    .map(|output| requested_output(output, signature, binary_by_default))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(InferRequest {
            id: header.id,
            inputs,
            outputs: OutputSelection {
                requested,
                binary_by_default,
            },
        })
    }
}

/// The element type of an input: its datatype, which must be the signature's.
fn input_type(input: &InputHeader, signature: &ModelSignature) -> Result<TensorType, String> {
    let given = tensor_type_of(&input.datatype).ok_or_else(|| {
        format!(
            "datatype {:?} is not supported; wisp passes FP32, FP64, INT32, INT64, UINT8 and BYTES",
            input.datatype
        )
    })?;
    if signature.inputs.is_empty() {
        return Ok(given);
    }
    let spec = signature
        .inputs
        .iter()
        .find(|spec| spec.name == input.name)
        .ok_or_else(|| {
            let names: Vec<_> = signature.inputs.iter().map(|s| s.name.as_str()).collect();
            format!("the model has no such input; its inputs are {names:?}")
        })?;
    let expected = datatype_of_dtype(spec.dtype);
    if expected != input.datatype {
        return Err(format!(
            "expected datatype {expected}, got {}",
            input.datatype
        ));
    }
    Ok(given)
}

fn requested_output(
    output: OutputHeader,
    signature: &ModelSignature,
    binary_by_default: bool,
) -> Result<RequestedOutput, CodecError> {
    let error = |message: String| CodecError::Output {
        name: output.name.clone(),
        message,
    };
    if !signature.outputs.is_empty() && !signature.outputs.iter().any(|s| s.name == output.name) {
        let names: Vec<_> = signature.outputs.iter().map(|s| s.name.as_str()).collect();
        return Err(error(format!(
            "the model has no such output; its outputs are {names:?}"
        )));
    }
    if let Some(key) = output
        .parameters
        .keys()
        .find(|k| k.starts_with("shared_memory") || *k == "classification")
    {
        return Err(error(format!("`{key}` is not supported")));
    }
    let binary = match output.parameters.get("binary_data") {
        None => binary_by_default,
        Some(value) => value
            .as_bool()
            .ok_or_else(|| error(format!("binary_data must be a boolean, got {value}")))?,
    };
    Ok(RequestedOutput {
        name: output.name,
        binary,
    })
}

/// An encoded response body.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedResponse {
    pub body: Vec<u8>,
    /// The length of the JSON part when binary data follows it: the value of the
    /// response's `Inference-Header-Content-Length` header.
    pub header_length: Option<usize>,
}

#[derive(Serialize)]
struct ResponseHeader<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<OutputTensor<'a>>,
}

#[derive(Serialize)]
struct OutputTensor<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [u32],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinaryParameters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Vec<Value>>,
}

#[derive(Serialize)]
struct BinaryParameters {
    binary_data_size: usize,
}

/// Encodes the response to a request: the selected outputs, each as JSON or binary data.
pub fn encode_response(
    model_name: &str,
    model_version: &str,
    id: Option<&str>,
    outputs: &[NamedTensor],
    selection: &OutputSelection,
) -> Result<EncodedResponse, CodecError> {
    let chosen: Vec<(&NamedTensor, bool)> = match &selection.requested {
        None => outputs
            .iter()
            .map(|output| (output, selection.binary_by_default))
            .collect(),
        Some(requested) => requested
            .iter()
            .map(|wanted| {
                outputs
                    .iter()
                    .find(|output| output.name == wanted.name)
                    .map(|output| (output, wanted.binary))
                    .ok_or_else(|| CodecError::Output {
                        name: wanted.name.clone(),
                        message: "the model did not produce it".into(),
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    let mut binary = Vec::new();
    let tensors = chosen
        .into_iter()
        .map(|(output, as_binary)| {
            let tensor = &output.tensor;
            let (parameters, data) = if as_binary {
                binary.extend_from_slice(&tensor.data);
                let size = tensor.data.len();
                (
                    Some(BinaryParameters {
                        binary_data_size: size,
                    }),
                    None,
                )
            } else {
                (None, Some(json_values(tensor)))
            };
            OutputTensor {
                name: &output.name,
                datatype: datatype(tensor.ty),
                shape: &tensor.shape,
                parameters,
                data,
            }
        })
        .collect();
    let header = ResponseHeader {
        model_name,
        model_version,
        id,
        outputs: tensors,
    };
    let mut body = serde_json::to_vec(&header).expect("a response header serialises");
    let header_length = body.len();
    let has_binary = header.outputs.iter().any(|o| o.parameters.is_some());
    body.extend_from_slice(&binary);
    Ok(EncodedResponse {
        body,
        header_length: has_binary.then_some(header_length),
    })
}

/// A request or response the codec refuses, as the domain error.
impl From<CodecError> for Error {
    fn from(error: CodecError) -> Self {
        let code = match &error {
            CodecError::Json(_) => ErrorCode::InvalidJson,
            CodecError::Malformed(_) => ErrorCode::InvalidRequest,
            CodecError::Input { .. } | CodecError::Output { .. } => ErrorCode::InvalidInput,
        };
        Error::new(code, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn iris() -> ModelSignature {
        ModelSignature {
            inputs: vec![TensorSpec {
                name: "input".into(),
                dtype: DType::F32,
                shape: vec![-1, 4],
                class_labels: None,
            }],
            outputs: vec![
                TensorSpec {
                    name: "label".into(),
                    dtype: DType::I64,
                    shape: vec![-1],
                    class_labels: None,
                },
                TensorSpec {
                    name: "probabilities".into(),
                    dtype: DType::F32,
                    shape: vec![-1, 3],
                    class_labels: None,
                },
            ],
        }
    }

    fn le(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn decode(value: Value) -> Result<InferRequest, CodecError> {
        decode_request(value.to_string().as_bytes(), None, &iris())
    }

    fn input_message(value: Value) -> String {
        match decode(value).unwrap_err() {
            CodecError::Input { message, .. } | CodecError::Output { message, .. } => message,
            other => other.to_string(),
        }
    }

    #[test]
    fn flat_nested_and_binary_inputs_agree() {
        let values = [5.1f32, 3.5, 1.4, 0.2, 6.0, 2.2, 5.0, 1.5];
        let flat = decode(json!({"inputs": [
            {"name": "input", "shape": [2, 4], "datatype": "FP32", "data": values}
        ]}))
        .unwrap();
        let nested = decode(json!({"inputs": [
            {"name": "input", "shape": [2, 4], "datatype": "FP32",
             "data": [&values[..4], &values[4..]]}
        ]}))
        .unwrap();
        let json = json!({
            "id": "42",
            "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                        "parameters": {"binary_data_size": 32}}],
            "parameters": {"binary_data_output": true}
        })
        .to_string();
        let mut body = json.clone().into_bytes();
        body.extend(le(&values));
        let binary = decode_request(&body, Some(json.len()), &iris()).unwrap();
        assert_eq!(flat.inputs, nested.inputs);
        assert_eq!(flat.inputs, binary.inputs);
        assert_eq!(flat.inputs[0].tensor, Tensor::from_values(&[2, 4], &values));
        assert_eq!(binary.id.as_deref(), Some("42"));
        assert!(binary.outputs.binary_by_default);
        assert!(!flat.outputs.binary_by_default);
        assert_eq!(flat.outputs.requested, None);
    }

    #[test]
    fn mistakes_are_named() {
        let input = |fields: Value| {
            let mut input = json!({"name": "input", "shape": [1, 4], "datatype": "FP32"});
            input
                .as_object_mut()
                .unwrap()
                .extend(fields.as_object().unwrap().clone());
            json!({"inputs": [input]})
        };
        let cases = [
            (
                input(json!({"datatype": "INT64", "data": [1, 2, 3, 4]})),
                "expected datatype FP32, got INT64",
            ),
            (
                input(json!({"datatype": "FP16", "data": [1, 2, 3, 4]})),
                "not supported",
            ),
            (
                input(json!({"name": "x", "data": [1, 2, 3, 4]})),
                "no such input",
            ),
            (input(json!({"data": [1, 2, 3]})), "holds 4 elements"),
            (
                input(json!({"shape": [-1, 4], "data": [1, 2, 3, 4]})),
                "non-negative",
            ),
            (input(json!({})), "needs `data` or `binary_data_size`"),
            (
                input(json!({"parameters": {"binary_data_size": 16}})),
                "no Inference-Header-Content-Length",
            ),
            (
                input(json!({"data": [1, 2, 3, 4], "parameters": {"shared_memory_region": "r"}})),
                "shared memory",
            ),
            (json!({"inputs": []}), "missing"),
        ];
        for (request, needle) in cases {
            let message = input_message(request.clone());
            assert!(message.contains(needle), "{request}: {message}");
        }
        let output = |output: Value| {
            json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                               "data": [1, 2, 3, 4]}], "outputs": [output]})
        };
        assert!(input_message(output(json!({"name": "nope"}))).contains("no such output"));
        assert!(
            input_message(output(
                json!({"name": "label", "parameters": {"classification": 2}})
            ))
            .contains("not supported")
        );
        assert!(matches!(
            decode_request(b"{\"inputs\": [", None, &iris()),
            Err(CodecError::Json(_))
        ));
        assert!(matches!(
            decode_request(b"{\"outputs\": []}", None, &iris()),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn binary_sizes_must_add_up() {
        let json = json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                      "parameters": {"binary_data_size": 16}}]})
        .to_string();
        let mut body = json.clone().into_bytes();
        body.extend(le(&[1.0, 2.0, 3.0, 4.0, 5.0]));
        let extra = decode_request(&body, Some(json.len()), &iris()).unwrap_err();
        assert!(
            extra.to_string().contains("no input claims them"),
            "{extra}"
        );
        let short = decode_request(&body[..body.len() - 8], Some(json.len()), &iris());
        assert!(short.unwrap_err().to_string().contains("only 12 bytes"));
        let past_end = decode_request(&body, Some(body.len() + 1), &iris());
        assert!(matches!(past_end, Err(CodecError::Malformed(_))));
        // A size that does not fit the shape.
        let json = json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                      "parameters": {"binary_data_size": 8}}]})
        .to_string();
        let mut body = json.clone().into_bytes();
        body.extend(le(&[1.0, 2.0]));
        let wrong = decode_request(&body, Some(json.len()), &iris()).unwrap_err();
        assert!(
            wrong.to_string().contains("needs 16 bytes, got 8"),
            "{wrong}"
        );
    }

    fn outputs() -> Vec<NamedTensor> {
        vec![
            NamedTensor::new("label", Tensor::from_values(&[2], &[0i64, 2])),
            NamedTensor::new(
                "probabilities",
                Tensor::from_values(&[2, 3], &[0.5f32, 0.25, 0.25, 0.0, 0.0, 1.0]),
            ),
        ]
    }

    #[test]
    fn responses_are_json_unless_asked_for_binary() {
        let all_json = OutputSelection {
            requested: None,
            binary_by_default: false,
        };
        let encoded = encode_response("iris", "1", Some("7"), &outputs(), &all_json).unwrap();
        assert_eq!(encoded.header_length, None);
        let body: Value = serde_json::from_slice(&encoded.body).unwrap();
        assert_eq!(
            body,
            json!({"model_name": "iris", "model_version": "1", "id": "7", "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [2], "data": [0, 2]},
                {"name": "probabilities", "datatype": "FP32", "shape": [2, 3],
                 "data": [0.5, 0.25, 0.25, 0.0, 0.0, 1.0]},
            ]})
        );
    }

    #[test]
    fn selected_outputs_come_in_order_each_as_asked() {
        let selection = OutputSelection {
            requested: Some(vec![
                RequestedOutput {
                    name: "probabilities".into(),
                    binary: true,
                },
                RequestedOutput {
                    name: "label".into(),
                    binary: false,
                },
            ]),
            binary_by_default: false,
        };
        let encoded = encode_response("iris", "3", None, &outputs(), &selection).unwrap();
        let length = encoded.header_length.expect("binary data follows");
        let header: Value = serde_json::from_slice(&encoded.body[..length]).unwrap();
        assert_eq!(
            header,
            json!({"model_name": "iris", "model_version": "3", "outputs": [
                {"name": "probabilities", "datatype": "FP32", "shape": [2, 3],
                 "parameters": {"binary_data_size": 24}},
                {"name": "label", "datatype": "INT64", "shape": [2], "data": [0, 2]},
            ]})
        );
        assert_eq!(
            &encoded.body[length..],
            &le(&[0.5, 0.25, 0.25, 0.0, 0.0, 1.0])[..]
        );

        let only_label = OutputSelection {
            requested: Some(vec![RequestedOutput {
                name: "label".into(),
                binary: true,
            }]),
            binary_by_default: false,
        };
        let encoded = encode_response("iris", "3", None, &outputs(), &only_label).unwrap();
        let length = encoded.header_length.unwrap();
        let header: Value = serde_json::from_slice(&encoded.body[..length]).unwrap();
        assert_eq!(header["outputs"].as_array().unwrap().len(), 1);
        let bytes: Vec<u8> = [0i64, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(&encoded.body[length..], &bytes[..]);

        let missing = OutputSelection {
            requested: Some(vec![RequestedOutput {
                name: "embedding".into(),
                binary: false,
            }]),
            binary_by_default: false,
        };
        assert!(encode_response("iris", "3", None, &outputs(), &missing).is_err());
    }

    #[test]
    fn metadata_uses_v2_datatype_names() {
        let metadata = ModelMetadata::new("iris", vec!["1".into()], "onnx", &iris());
        assert_eq!(
            serde_json::to_value(&metadata).unwrap(),
            json!({"name": "iris", "versions": ["1"], "platform": "onnx",
                   "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
                   "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]},
                               {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]})
        );
        assert_eq!(datatype_of_dtype(DType::String), "BYTES");
        for dtype in [DType::U8, DType::I32, DType::I64, DType::F32, DType::F64] {
            let ty = crate::tensors::tensor_type(dtype).unwrap();
            assert_eq!(datatype_of_dtype(dtype), datatype(ty));
        }
        for ty in [
            TensorType::F32,
            TensorType::F64,
            TensorType::I32,
            TensorType::I64,
            TensorType::U8,
        ] {
            assert_eq!(tensor_type_of(datatype(ty)), Some(ty));
        }
    }
}
