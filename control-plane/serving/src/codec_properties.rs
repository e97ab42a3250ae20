//! Property tests of everything that turns caller bytes, JSON or shapes into tensors and
//! back: the V2 JSON and binary decoder, JSON tensors, the V1 codec and the schema
//! generator. Arbitrary input must give an answer, never a panic or an abort, and no
//! container larger than the bounds of [`super::shape_limits`] (oversized shapes come
//! back as errors). Case counts stay small: these run in debug builds in CI.

use proptest::prelude::*;
use serde_json::{Value, json};
use wisp_host::{NamedTensor, Tensor, TensorType};

use super::shape_limits::{self, MAX_EXAMPLE_ELEMENTS};
use super::{schema, tensors, v1_codec, v2_codec};
use crate::inspect::{DType, ModelSignature, TensorSpec};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        // Shrinking a failure is worth little next to a fast CI run.
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    }
}

/// Dimensions an attacker would pick: zeros, ones, and values whose products overflow.
fn dim() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        0u32..5,
        Just(65_536),
        Just(1 << 20),
        Just(u32::MAX),
        any::<u32>(),
    ]
}

fn shape() -> impl Strategy<Value = Vec<u32>> {
    prop_oneof![
        prop::collection::vec(dim(), 0..6),
        // Deep shapes: nesting must not recurse without bound.
        (70usize..200, dim()).prop_map(|(rank, last)| {
            let mut shape = vec![1; rank];
            shape.push(last);
            shape
        }),
    ]
}

fn dtype() -> impl Strategy<Value = DType> {
    prop_oneof![
        Just(DType::F32),
        Just(DType::F64),
        Just(DType::I32),
        Just(DType::I64),
        Just(DType::U8),
        Just(DType::String),
        Just(DType::Bool),
    ]
}

/// Any JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        (0u8..=255).prop_map(Value::from),
        "[a-z0-9+/=]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A JSON tensor object as a caller would send it, with hostile shapes.
fn tensor_object() -> impl Strategy<Value = Value> {
    (
        shape(),
        prop_oneof![
            Just("f32"),
            Just("i64"),
            Just("u8"),
            Just("FP32"),
            Just("nope")
        ],
        prop_oneof![
            json_value(),
            prop::collection::vec(any::<i8>(), 0..16).prop_map(|v| json!(v)),
        ],
    )
        .prop_map(|(shape, dtype, data)| json!({"shape": shape, "dtype": dtype, "data": data}))
}

fn iris() -> ModelSignature {
    ModelSignature {
        inputs: vec![TensorSpec {
            name: "input".into(),
            dtype: DType::F32,
            shape: vec![-1, 4],
            class_labels: None,
        }],
        outputs: vec![],
    }
}

/// Every decoded tensor is consistent and holds no more than the body carried: elements
/// come from JSON leaves or binary bytes, never from a shape alone.
fn check_decoded(inputs: &[NamedTensor], body_len: usize) {
    for input in inputs {
        input
            .tensor
            .check_layout()
            .expect("a decoded tensor fits its shape");
        assert!(
            input.tensor.data.len() <= body_len.saturating_mul(8).max(8),
            "{} bytes from a body of {body_len}",
            input.tensor.data.len()
        );
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn v2_decoding_arbitrary_bytes_never_panics(
        body in prop::collection::vec(any::<u8>(), 0..256),
        header_length in prop::option::of(0usize..300),
    ) {
        if let Ok(request) = v2_codec::decode_request(&body, header_length, &iris()) {
            check_decoded(&request.inputs, body.len());
        }
    }

    #[test]
    fn v2_decoding_hostile_shapes_and_binary_parts_never_panics(
        inputs in prop::collection::vec(
            (
                prop_oneof![Just("input".to_owned()), "[a-z]{1,4}"],
                shape(),
                prop_oneof![Just("FP32"), Just("INT64"), Just("UINT8"), Just("BYTES")],
                prop_oneof![
                    json_value().prop_map(|data| json!({"data": data})),
                    (0usize..64).prop_map(|n| json!({"parameters": {"binary_data_size": n}})),
                ],
            ),
            0..4,
        ),
        binary in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let inputs: Vec<Value> = inputs
            .into_iter()
            .map(|(name, shape, datatype, mut payload)| {
                let fields = payload.as_object_mut().expect("object");
                fields.insert("name".into(), json!(name));
                fields.insert("shape".into(), json!(shape));
                fields.insert("datatype".into(), json!(datatype));
                payload
            })
            .collect();
        let header = json!({"inputs": inputs}).to_string();
        let mut body = header.clone().into_bytes();
        body.extend_from_slice(&binary);
        for signature in [iris(), ModelSignature::default()] {
            if let Ok(request) = v2_codec::decode_request(&body, Some(header.len()), &signature) {
                check_decoded(&request.inputs, body.len());
            }
        }
    }

    #[test]
    fn json_tensors_from_arbitrary_values_never_panic(
        value in prop_oneof![json_value(), tensor_object()],
        declared in prop::option::of(dtype()),
    ) {
        let signature = ModelSignature {
            inputs: declared
                .map(|dtype| vec![TensorSpec { name: "x".into(), dtype, shape: vec![-1], class_labels: None }])
                .unwrap_or_default(),
            outputs: vec![],
        };
        let inputs = [("x".to_owned(), value.clone())].into_iter().collect();
        if let Ok(tensors) = tensors::parse_inputs(&inputs, &signature) {
            check_decoded(&tensors, value.to_string().len());
        }
    }

    #[test]
    fn shapes_that_overflow_are_errors(shape in shape(), ty in prop_oneof![Just(TensorType::F32), Just(TensorType::U8)]) {
        let result = tensors::tensor_from_json(ty, Some(shape.clone()), &json!([]));
        match shape_limits::element_count(&shape) {
            Some(0) => prop_assert!(result.is_ok(), "{shape:?}: {result:?}"),
            _ => prop_assert!(result.is_err(), "{shape:?}"),
        }
    }

    #[test]
    fn v1_instances_from_arbitrary_json_never_panic(
        instances in prop::collection::vec(json_value(), 0..6),
    ) {
        if let Ok(tensor) = v1_codec::instances_tensor(TensorType::F32, &instances) {
            tensor.check_layout().expect("consistent");
        }
    }

    #[test]
    fn v1_predictions_of_any_output_shape_are_bounded(
        shapes in prop::collection::vec(shape(), 1..3),
    ) {
        // Outputs as a runtime could return them: data filling the shape when small,
        // zero-volume shapes of any size.
        let outputs: Vec<NamedTensor> = shapes
            .into_iter()
            .enumerate()
            .filter_map(|(i, shape)| {
                let count = shape_limits::element_count(&shape)?;
                (count <= 4096).then(|| {
                    NamedTensor::new(
                        format!("out{i}"),
                        Tensor { ty: TensorType::U8, shape, data: vec![1; count as usize] },
                    )
                })
            })
            .collect();
        match v1_codec::predictions(&outputs) {
            Ok(predictions) => {
                let rows = outputs
                    .iter()
                    .map(|o| o.tensor.shape.first().copied().map_or(0, u64::from))
                    .max()
                    .unwrap_or(0);
                prop_assert!(predictions.len() as u64 <= rows.max(1));
                for output in &outputs {
                    prop_assert!(shape_limits::check_nesting(&output.tensor.shape).is_ok());
                }
            }
            Err(v1_codec::V1Error::TooLarge(_)) => {
                prop_assert!(outputs.iter().any(|o| shape_limits::check_nesting(&o.tensor.shape).is_err()));
            }
            Err(v1_codec::V1Error::Invalid(_)) => {}
        }
    }

    #[test]
    fn schemas_of_any_signature_are_bounded(
        specs in prop::collection::vec(
            (
                dtype(),
                prop_oneof![
                    prop::collection::vec(
                        prop_oneof![Just(-1i64), 0i64..5, Just(1024), Just(i64::MAX), any::<i64>()],
                        0..6,
                    ),
                    (70usize..300).prop_map(|rank| vec![1i64; rank]),
                ],
            ),
            0..3,
        ),
    ) {
        let signature = ModelSignature {
            inputs: specs
                .iter()
                .enumerate()
                .map(|(i, (dtype, shape))| TensorSpec { name: format!("in{i}"), dtype: *dtype, shape: shape.clone(), class_labels: None })
                .collect(),
            outputs: specs
                .iter()
                .map(|(dtype, shape)| TensorSpec { name: "out".into(), dtype: *dtype, shape: shape.clone(), class_labels: None })
                .collect(),
        };
        let _ = schema::request(&signature);
        let _ = schema::response(&signature);
        let example = schema::example(&signature);
        // Every input shown in full is within the cap; the others are named in the note.
        for (spec, value) in signature.inputs.iter().zip(example.request["inputs"].as_object().expect("inputs").values()) {
            let leaves = count_leaves(value);
            if value.get("shape").is_some() {
                prop_assert!(example.note.as_deref().is_some_and(|n| n.contains(&spec.name)));
            } else {
                prop_assert!(leaves <= MAX_EXAMPLE_ELEMENTS, "{} leaves for {:?}", leaves, spec.shape);
            }
        }
    }
}

fn count_leaves(value: &Value) -> u64 {
    match value {
        Value::Array(items) => items.iter().map(count_leaves).sum(),
        _ => 1,
    }
}
