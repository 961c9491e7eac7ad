"""The rerank API's models (POST /v1/rerank, the Cohere / Jina shape llama-server and LocalAI
serve), shared by the gateway, which validates and documents the route, and the inference
service, which answers it."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from llmserver_common.openai_api import ModelName, integer

# Bounds of one request: a rerank scores every document, so both are capped.
MAX_DOCUMENTS = 1000
MAX_TEXT_CHARS = 32_768

Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]


class RerankDocument(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    text: Text


def _document_kind(value: Any) -> str:
    return "text" if isinstance(value, str) else "object"


# A string or a {text} object; tagged so that an error names the field itself
# ("documents.2.text"), not each member of the union it tried.
Document = Annotated[
    Annotated[Text, Tag("text")] | Annotated[RerankDocument, Tag("object")],
    Discriminator(_document_kind),
]


class RerankRequest(BaseModel):
    # Unknown fields are ignored, as everywhere in the API; types are strict.
    model_config = ConfigDict(extra="ignore", strict=True)

    model: ModelName
    query: Text = Field(description="What the documents are ranked against; not blank.")
    documents: list[Document] = Field(
        min_length=1,
        max_length=MAX_DOCUMENTS,
        description=f"1 to {MAX_DOCUMENTS} documents: strings or {{text}} objects, each at most "
        f"{MAX_TEXT_CHARS} characters and within the model's input length (else 400).",
    )
    top_n: integer(ge=1) | None = Field(  # type: ignore[valid-type]
        default=None, description="How many results to return; absent: all of them."
    )
    return_documents: bool = Field(
        default=False, description="Each result carries its document's text."
    )

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the query is blank")
        return value

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


class RerankResult(BaseModel):
    index: int = Field(description="The document's position in the request.")
    relevance_score: float = Field(description="Higher is more relevant.")
    document: RerankDocument | None = Field(
        default=None, description="With return_documents: the document's text."
    )


class RerankUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class RerankResponse(BaseModel):
    results: list[RerankResult] = Field(description="Most relevant first.")
    model: str
    usage: RerankUsage
