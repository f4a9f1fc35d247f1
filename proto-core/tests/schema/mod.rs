//! Reflection over the wire types through serde, so tests can compare the
//! document's tables with the types themselves.
//!
//! A type's derived `Deserialize` hands the deserializer its variant names (in
//! declaration order, which is postcard's wire-tag order) and each struct's
//! field names (in wire order). [`Probe`] is a deserializer that only records
//! what it is asked for and then fails; nothing is decoded.
// Shared by several test binaries, each of which uses a part of it.
#![allow(dead_code)]

use serde::de::{self, DeserializeSeed, EnumAccess, IntoDeserializer, VariantAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// What follows a variant's tag on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Nothing: the tag is the whole variant.
    Unit,
    /// Named fields, in wire order.
    Struct(&'static [&'static str]),
    /// One value of the named struct type (e.g. `RecordItem(Record)`).
    Newtype(&'static str),
    /// A tuple of this many values.
    Tuple(usize),
}

/// One variant of an enum as the wire sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    /// The wire tag (postcard writes it as a varint).
    pub tag: usize,
    /// The Rust name.
    pub name: &'static str,
    /// What follows the tag.
    pub shape: Shape,
}

/// The variant names of enum `T`, in wire-tag order.
pub fn variant_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut names = None;
    let _ = T::deserialize(Probe::Names(&mut names));
    names.expect("not an enum")
}

/// Every variant of enum `T` with its tag and shape.
pub fn variants<'de, T: Deserialize<'de>>() -> Vec<Variant> {
    let names = variant_names::<T>();
    (0..names.len())
        .map(|tag| {
            let mut shape = None;
            let index = u32::try_from(tag).expect("fewer than 2^32 variants");
            let _ = T::deserialize(Probe::Variant(index, &mut shape));
            Variant {
                tag,
                name: names[tag],
                shape: shape.expect("the enum asked for its variant"),
            }
        })
        .collect()
}

/// The name and field names (in wire order) of struct `T`.
pub fn struct_fields<'de, T: Deserialize<'de>>() -> (&'static str, &'static [&'static str]) {
    let mut found = None;
    let _ = T::deserialize(Probe::Struct(&mut found));
    found.expect("not a struct with named fields")
}

/// A deserializer that records what a type asks for, then fails.
enum Probe<'r> {
    /// Record an enum's variant names.
    Names(&'r mut Option<&'static [&'static str]>),
    /// Select variant `u32` of an enum and record its shape.
    Variant(u32, &'r mut Option<Shape>),
    /// Record a struct's name and field names.
    Struct(&'r mut Option<(&'static str, &'static [&'static str])>),
}

fn stop<T>() -> Result<T, de::value::Error> {
    Err(de::Error::custom("probe: recorded, nothing decoded"))
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        stop()
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self {
            Probe::Names(slot) => {
                *slot = Some(variants);
                stop()
            }
            Probe::Variant(tag, slot) => visitor.visit_enum(VariantProbe { tag, slot }),
            Probe::Struct(_) => stop(),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        if let Probe::Struct(slot) = self {
            *slot = Some((name, fields));
        }
        stop()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map identifier ignored_any
    }
}

/// Picks one variant by index and records what it then asks for.
struct VariantProbe<'r> {
    tag: u32,
    slot: &'r mut Option<Shape>,
}

impl<'de, 'r> EnumAccess<'de> for VariantProbe<'r> {
    type Error = de::value::Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self), Self::Error> {
        let deserializer: de::value::U32Deserializer<Self::Error> = self.tag.into_deserializer();
        Ok((seed.deserialize(deserializer)?, self))
    }
}

impl<'de> VariantAccess<'de> for VariantProbe<'_> {
    type Error = de::value::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        *self.slot = Some(Shape::Unit);
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, Self::Error> {
        let mut inner = None;
        let _ = seed.deserialize(Probe::Struct(&mut inner));
        *self.slot = Some(Shape::Newtype(inner.map_or("?", |(name, _)| name)));
        stop()
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, _: V) -> Result<V::Value, Self::Error> {
        *self.slot = Some(Shape::Tuple(len));
        stop()
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.slot = Some(Shape::Struct(fields));
        stop()
    }
}
