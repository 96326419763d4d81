"""Stream definitions for tap-thoughtindustries.

Field lists follow the vendor's records as GitLab's production models read them (the vendor's own
reference shows event objects only as ``{}``). Date-times are typed ``date-time``; counts, prices,
grades and quantities are numbers; flags are booleans; free-form vendor objects stay objects.
"""

from __future__ import annotations

from typing import ClassVar

from singer_sdk import typing as th

from harborline_tap_thoughtindustries.client import CursorStream, EventStream

# -- shared fragments -----------------------------------------------------------------------------

_REFS = [th.Property(f"ref{n}", th.StringType) for n in (1, 2, 4, 5, 6, 7, 8, 9, 10)]

#: ``userDetail``: the snapshot of the learner that every event carries.
USER_DETAIL = th.ObjectType(
    th.Property("id", th.StringType, description="The learner's user id."),
    th.Property("client", th.StringType),
    th.Property("clientId", th.StringType),
    th.Property("departmentId", th.StringType),
    th.Property("country", th.StringType),
    th.Property("state", th.StringType),
    *_REFS,
    th.Property("sfAccountId", th.StringType),
    th.Property("sfContactId", th.StringType),
    th.Property("stripeCustomerId", th.StringType),
)

_TIMESTAMP = th.Property("timestamp", th.DateTimeType, required=True, description="When the event happened (UTC).")
_USER = th.Property("user", th.StringType, description="The learner's e-mail address.")
_USER_DETAIL = th.Property("userDetail", USER_DETAIL)
_EVENT_KEY = th.Property(
    "event_key",
    th.StringType,
    required=True,
    description="Key built by the tap (SHA-256 of the identifying fields): the event has no id.",
)

#: courseAction, and the older courseEnrollment/courseCertificate feeds, which the vendor routes
#: through the same handler and which therefore share its shape.
COURSE_ACTION_SCHEMA = th.PropertiesList(
    th.Property("id", th.StringType, required=True),
    th.Property("companyId", th.StringType),
    th.Property("source", th.StringType),
    th.Property("type", th.StringType),
    _TIMESTAMP,
    th.Property("notifiableId", th.StringType, description="The course the event is about."),
    th.Property("courseSku", th.StringType),
    th.Property("courseTitle", th.StringType),
    _USER,
    _USER_DETAIL,
).to_dict()


# -- event streams ----------------------------------------------------------------------------------


class CourseCompletionsStream(EventStream):
    """A learner completed a course."""

    name = "course_completions"
    event_name = "courseCompletion"
    primary_keys: ClassVar[tuple[str, ...]] = ("id",)
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("companyId", th.StringType),
        th.Property("event", th.StringType),
        th.Property("source", th.StringType),
        th.Property("type", th.StringType),
        _TIMESTAMP,
        th.Property("updatedAt", th.DateTimeType),
        th.Property("license", th.StringType),
        th.Property("notifiableId", th.StringType),
        th.Property("title", th.StringType),
        _USER,
        _USER_DETAIL,
    ).to_dict()


class CourseActionsStream(EventStream):
    """Course actions: enrolments, starts, completions, certificate grants, revocations."""

    name = "course_actions"
    event_name = "courseAction"
    primary_keys: ClassVar[tuple[str, ...]] = ("id",)
    schema = COURSE_ACTION_SCHEMA


class CourseEnrollmentsStream(EventStream):
    """Course enrolments (the older feed; same shape as course actions)."""

    name = "course_enrollments"
    event_name = "courseEnrollment"
    primary_keys: ClassVar[tuple[str, ...]] = ("id",)
    schema = COURSE_ACTION_SCHEMA


class CourseCertificatesStream(EventStream):
    """Certificates earned on completing a course (same shape as course actions)."""

    name = "course_certificates"
    event_name = "courseCertificate"
    primary_keys: ClassVar[tuple[str, ...]] = ("id",)
    schema = COURSE_ACTION_SCHEMA


class CourseViewsStream(EventStream):
    """A learner viewed a course page; no id, keyed on (user, time, course, topic)."""

    name = "course_views"
    event_name = "courseView"
    primary_keys: ClassVar[tuple[str, ...]] = ("event_key",)
    key_fields = ("userDetail.id", "timestamp", "courseId", "topicTitle")
    schema = th.PropertiesList(
        _EVENT_KEY,
        th.Property("companyId", th.StringType),
        th.Property("courseId", th.StringType),
        th.Property("courseSku", th.StringType),
        th.Property("courseTitle", th.StringType),
        th.Property("sectionId", th.StringType),
        th.Property("sectionSlug", th.StringType),
        th.Property("sectionTitle", th.StringType),
        th.Property("lessonId", th.StringType),
        th.Property("lessonSlug", th.StringType),
        th.Property("lessonTitle", th.StringType),
        th.Property("topicId", th.StringType),
        th.Property("topicTitle", th.StringType),
        _TIMESTAMP,
        _USER,
        _USER_DETAIL,
    ).to_dict()


_COMPANY = (
    th.Property("companyId", th.StringType),
    th.Property("companyHost", th.StringType),
    th.Property("companySubdomain", th.StringType),
    th.Property("event", th.StringType),
)


class LoginsStream(EventStream):
    """A learner logged in; no id, keyed on (user id, time)."""

    name = "logins"
    event_name = "login"
    primary_keys: ClassVar[tuple[str, ...]] = ("event_key",)
    key_fields = ("userDetail.id", "timestamp")
    schema = th.PropertiesList(
        _EVENT_KEY,
        *_COMPANY,
        _TIMESTAMP,
        th.Property("userAgent", th.StringType),
        th.Property("browserInfo", th.ObjectType(additional_properties=True)),
        _USER,
        _USER_DETAIL,
    ).to_dict()


class VisitsStream(EventStream):
    """A learner visited the site; no id, keyed on (user id, time)."""

    name = "visits"
    event_name = "visit"
    primary_keys: ClassVar[tuple[str, ...]] = ("event_key",)
    key_fields = ("userDetail.id", "timestamp")
    schema = th.PropertiesList(
        _EVENT_KEY,
        *_COMPANY,
        _TIMESTAMP,
        _USER,
        _USER_DETAIL,
    ).to_dict()


class CoursePurchasesStream(EventStream):
    """A course purchase (successful or failed charge)."""

    name = "course_purchases"
    event_name = "coursePurchase"
    primary_keys: ClassVar[tuple[str, ...]] = ("id",)
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("transactionId", th.StringType),
        th.Property("orderId", th.StringType),
        th.Property("chargeId", th.StringType),
        th.Property("groupId", th.StringType),
        _TIMESTAMP,
        th.Property("companyId", th.StringType),
        th.Property("coupon", th.ObjectType(additional_properties=True)),
        th.Property("couponCode", th.StringType),
        th.Property("purchasableId", th.StringType),
        th.Property("purchasableType", th.StringType),
        th.Property("revenueType", th.StringType),
        th.Property("quantity", th.IntegerType),
        th.Property("variation", th.StringType),
        th.Property("shippingMethod", th.StringType),
        th.Property("type", th.StringType),
        th.Property("sku", th.StringType),
        th.Property("slug", th.StringType),
        th.Property("title", th.StringType),
        th.Property("courseStartDate", th.DateTimeType),
        th.Property("success", th.BooleanType),
        th.Property("failureCode", th.StringType),
        th.Property("failureMessage", th.StringType),
        th.Property("giftRecipientEmail", th.StringType),
        _USER,
        _USER_DETAIL,
        th.Property(
            "referral",
            th.ObjectType(
                th.Property("referrer", th.StringType),
                th.Property("referrer_type", th.StringType),
                th.Property("source", th.StringType),
            ),
        ),
    ).to_dict()


class LearningPathActionsStream(EventStream):
    """Learning path starts, completions and milestones."""

    name = "learning_path_actions"
    event_name = "learningPathAction"
    primary_keys: ClassVar[tuple[str, ...]] = ("id",)
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("companyId", th.StringType),
        th.Property("source", th.StringType),
        th.Property("type", th.StringType),
        _TIMESTAMP,
        th.Property("notifiableId", th.StringType),
        th.Property("learningPathTitle", th.StringType),
        th.Property("learningPathSku", th.StringType),
        th.Property("milestoneTitle", th.StringType),
        _USER,
        _USER_DETAIL,
    ).to_dict()


class EmailCapturesStream(EventStream):
    """An e-mail address left on a course landing page; no id.

    Keyed on (anonymous visitor id, course, notifiable, time). The e-mail address itself is
    deliberately not part of the key: an unkeyed hash of it would let anyone confirm a guessed
    address even where the ``user`` column is pseudonymized.
    """

    name = "email_captures"
    event_name = "emailCapture"
    primary_keys: ClassVar[tuple[str, ...]] = ("event_key",)
    key_fields = ("anonymousId", "courseId", "notifiableId", "timestamp")
    schema = th.PropertiesList(
        _EVENT_KEY,
        *_COMPANY,
        _TIMESTAMP,
        th.Property("anonymousId", th.StringType),
        th.Property("source", th.StringType),
        th.Property("notifiableId", th.StringType),
        th.Property("notifiableType", th.StringType),
        th.Property("courseId", th.StringType),
        th.Property("courseSku", th.StringType),
        th.Property("courseTitle", th.StringType),
        _USER,
    ).to_dict()


class RedemptionCodeRedemptionsStream(EventStream):
    """A redemption code was redeemed; no id, keyed on (user id, code group, code, time)."""

    name = "redemption_code_redemptions"
    event_name = "redemptionCodeRedeem"
    primary_keys: ClassVar[tuple[str, ...]] = ("event_key",)
    key_fields = ("userDetail.id", "redemptionCodeGroupLabel", "redemptionCode", "timestamp")
    schema = th.PropertiesList(
        _EVENT_KEY,
        *_COMPANY,
        _TIMESTAMP,
        th.Property("redemptionCode", th.StringType),
        th.Property("redemptionCodeGroupLabel", th.StringType),
        _USER,
        _USER_DETAIL,
    ).to_dict()


# -- cursor (resource) streams -----------------------------------------------------------------------

_ANY_ARRAY = th.ArrayType(th.CustomType({}))


class UsersStream(CursorStream):
    """Learners and administrators (personal data: e-mail, names, postcode)."""

    name = "users"
    path = "/users"
    results_key = "users"
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("email", th.StringType),
        th.Property("firstName", th.StringType),
        th.Property("lastName", th.StringType),
        th.Property("shippingName", th.StringType),
        th.Property("zipCode", th.StringType),
        th.Property("country", th.StringType),
        th.Property("state", th.StringType),
        th.Property("language", th.StringType),
        th.Property("clientId", th.StringType),
        th.Property("roleKey", th.StringType),
        th.Property("disabled", th.BooleanType),
        th.Property("balance", th.NumberType),
        th.Property("asset", th.StringType),
        th.Property("createdAt", th.DateTimeType),
        th.Property("lastActiveAt", th.DateTimeType),
        th.Property("externalCustomerId", th.StringType),
        th.Property("learnerUserId", th.StringType),
        th.Property("managerUserId", th.StringType),
        *_REFS,
        th.Property("sfAccountId", th.StringType),
        th.Property("sfContactId", th.StringType),
        th.Property("stripeCustomerId", th.StringType),
        th.Property("customFields", th.ObjectType(additional_properties=True)),
        th.Property("allocatedLicenses", _ANY_ARRAY),
        th.Property("allocatedLearningPaths", _ANY_ARRAY),
        th.Property("purchasedCourses", _ANY_ARRAY),
        th.Property("purchasedBundles", _ANY_ARRAY),
        th.Property("waitlistedCourses", _ANY_ARRAY),
    ).to_dict()


class ContentStream(CursorStream):
    """Courses, learning paths, videos, articles and other content items."""

    name = "content"
    path = "/content"
    results_key = "contentItems"
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("kind", th.StringType),
        th.Property("title", th.StringType),
        th.Property("slug", th.StringType),
        th.Property("sku", th.StringType),
        th.Property("source", th.StringType),
        th.Property("status", th.StringType),
        th.Property("language", th.StringType),
        th.Property("description", th.StringType),
        th.Property("metaTitle", th.StringType),
        th.Property("metaDescription", th.StringType),
        th.Property("asset", th.StringType),
        th.Property("assetAltText", th.StringType),
        th.Property("contentTypeLabel", th.StringType),
        th.Property("authorsAndInstructors", _ANY_ARRAY),
        th.Property("tags", th.ArrayType(th.StringType)),
        th.Property("customFields", th.ObjectType(additional_properties=True)),
        th.Property("createdAt", th.DateTimeType),
        th.Property("updatedAt", th.DateTimeType),
        th.Property("courseStartDate", th.DateTimeType),
        th.Property("courseEndDate", th.DateTimeType),
        th.Property("enrollmentStartDate", th.DateTimeType),
        th.Property("enrollmentEndDate", th.DateTimeType),
        th.Property("enrollmentCount", th.IntegerType),
        th.Property("seatsLimit", th.IntegerType),
        th.Property("waitlistCount", th.IntegerType),
        th.Property("priceInCents", th.IntegerType),
        th.Property("suggestedRetailPriceInCents", th.IntegerType),
        th.Property("freeWithRegistration", th.BooleanType),
        th.Property("hasChildren", th.BooleanType),
        th.Property("waitlistingEnabled", th.BooleanType),
        th.Property("waitlistingTriggered", th.BooleanType),
        th.Property("url", th.StringType),
    ).to_dict()


class MeetingsStream(CursorStream):
    """Instructor-led sessions (ILT/VILT)."""

    name = "meetings"
    path = "/meetings"
    results_key = "meetings"
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("title", th.StringType),
        th.Property(
            "course",
            th.ObjectType(th.Property("id", th.StringType), th.Property("title", th.StringType)),
        ),
        th.Property("startDate", th.DateTimeType),
        th.Property("endDate", th.DateTimeType),
        th.Property("location", th.StringType),
        th.Property("attendeeInfo", th.StringType),
        th.Property("instructors", _ANY_ARRAY),
    ).to_dict()


class ClientsStream(CursorStream):
    """Panorama clients (sub-tenants)."""

    name = "clients"
    path = "/clients"
    results_key = "clients"
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("name", th.StringType),
        th.Property("sku", th.StringType),
        th.Property("slug", th.StringType),
        th.Property("disabled", th.BooleanType),
        th.Property("tags", th.ArrayType(th.StringType)),
        th.Property("createdAt", th.DateTimeType),
        th.Property("updatedAt", th.DateTimeType),
    ).to_dict()


class AssessmentAttemptsStream(CursorStream):
    """Quiz and test attempts with their answers (``user.email`` is personal data)."""

    name = "assessment_attempts"
    path = "/assessmentAttempts"
    results_key = "assessmentAttempts"
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("status", th.StringType),
        th.Property("grade", th.NumberType),
        th.Property("passed", th.BooleanType),
        th.Property("timeElapsedInSeconds", th.IntegerType),
        th.Property("createdAt", th.DateTimeType),
        th.Property("updatedAt", th.DateTimeType),
        th.Property("courseId", th.StringType),
        th.Property("course", th.ObjectType(th.Property("title", th.StringType))),
        th.Property(
            "assessment",
            th.ObjectType(
                th.Property("id", th.StringType),
                th.Property("title", th.StringType),
                th.Property("type", th.StringType),
            ),
        ),
        th.Property(
            "user",
            th.ObjectType(
                th.Property("id", th.StringType),
                th.Property("email", th.StringType),
                th.Property("clientId", th.StringType),
            ),
        ),
        th.Property(
            "answers",
            th.ArrayType(
                th.ObjectType(
                    th.Property("id", th.StringType),
                    th.Property("question", th.StringType),
                    th.Property("answer", th.StringType),
                    th.Property("correct", th.BooleanType),
                )
            ),
        ),
    ).to_dict()


class CouponsStream(CursorStream):
    """Discount coupons."""

    name = "coupons"
    path = "/coupons"
    results_key = "coupons"
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("code", th.StringType),
        th.Property("active", th.BooleanType),
        th.Property("allowMultipleInCart", th.BooleanType),
        th.Property("amountOffInCents", th.IntegerType),
        th.Property("percentOff", th.NumberType),
        th.Property("appliesToUser", th.StringType),
        th.Property("maxRedemptions", th.IntegerType),
        th.Property("timesRedeemed", th.IntegerType),
        th.Property("redeemBy", th.DateTimeType),
    ).to_dict()


EVENT_STREAMS: tuple[type[EventStream], ...] = (
    CourseCompletionsStream,
    CourseActionsStream,
    CourseViewsStream,
    LoginsStream,
    VisitsStream,
    CoursePurchasesStream,
    LearningPathActionsStream,
    EmailCapturesStream,
    RedemptionCodeRedemptionsStream,
    CourseEnrollmentsStream,
    CourseCertificatesStream,
)
CURSOR_STREAMS: tuple[type[CursorStream], ...] = (
    UsersStream,
    ContentStream,
    MeetingsStream,
    ClientsStream,
    AssessmentAttemptsStream,
    CouponsStream,
)

#: The ``pseudonymize`` setting that covers every e-mail address and name the API returns.
PERSONAL_DATA_FIELDS: dict[str, list[str]] = {
    "course_completions": ["user"],
    "course_actions": ["user"],
    "course_views": ["user"],
    "logins": ["user"],
    "visits": ["user"],
    "course_purchases": ["user", "giftRecipientEmail"],
    "learning_path_actions": ["user"],
    "email_captures": ["user"],
    "redemption_code_redemptions": ["user"],
    "course_enrollments": ["user"],
    "course_certificates": ["user"],
    "users": ["email", "firstName", "lastName", "shippingName", "zipCode"],
    "assessment_attempts": ["user.email"],
    # Instructors are people too: their names appear in these lists.
    "meetings": ["instructors"],
    "content": ["authorsAndInstructors"],
}
