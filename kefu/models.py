"""Imports every ORM module so that ``Base.metadata`` is complete (for Alembic and test set-up)."""

from kefu.api import models as api_models  # noqa: F401
from kefu.attachments import models as attachment_models  # noqa: F401
from kefu.audit import models as audit_models  # noqa: F401
from kefu.auth import models as auth_models  # noqa: F401
from kefu.bot import models as bot_models  # noqa: F401
from kefu.canned import models as canned_models  # noqa: F401
from kefu.channels import models as channel_models  # noqa: F401
from kefu.commerce import models as commerce_models  # noqa: F401
from kefu.contacts import models as contact_models  # noqa: F401
from kefu.conversations import models as conversation_models  # noqa: F401
from kefu.core.db import Base
from kefu.events import models as event_models  # noqa: F401
from kefu.feedback import models as feedback_models  # noqa: F401
from kefu.knowledge import models as knowledge_models  # noqa: F401
from kefu.nlp import models as nlp_models  # noqa: F401
from kefu.routing import models as routing_models  # noqa: F401
from kefu.tenants import models as tenant_models  # noqa: F401

metadata = Base.metadata
