"""The API's routes, by concern; thin over the services."""

from fastapi import APIRouter

from rag.api.routes import ask, documents, feedback, openai, ops, page

router = APIRouter()
router.include_router(ask.router)
router.include_router(documents.router)
router.include_router(feedback.router)
router.include_router(ops.router)
router.include_router(page.router)
router.include_router(openai.router)

__all__ = ["router"]
